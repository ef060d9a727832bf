//! Evidence gathering: every fact the audit uses, with where it came from. Sources are GGUF
//! metadata (read with the hardened container parser, tensors never touched), a model card's
//! YAML front matter, and licence files (plain text, Markdown or HTML), each identified.

use std::path::{Path, PathBuf};

use glassbox_license::{Format, Identification, identify, to_plain};
use serde::Serialize;

use crate::Error;

/// At most this many files are looked at in a model folder.
pub const MAX_FILES: usize = 10_000;
/// A model card's YAML front matter over this size is refused.
pub const MAX_FRONT_MATTER: usize = 256 << 10;
/// A model card over this size is refused.
pub const MAX_CARD_BYTES: u64 = 4 << 20;

/// One fact and its source ("GGUF metadata general.license in model.gguf", "README.md front
/// matter `license`", "LICENSE lines 1-202").
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// A file holding weights.
#[derive(Debug, Clone, Serialize)]
pub struct WeightFile {
    pub path: PathBuf,
    pub format: String,
    pub size: u64,
    pub sha256: String,
}

/// A licence (or notice, or use-policy) file and what it was identified as.
#[derive(Debug, Clone, Serialize)]
pub struct LicenceFile {
    pub path: PathBuf,
    pub identification: Identification,
    #[serde(skip)]
    pub text: String,
}

/// A base model named by metadata.
#[derive(Debug, Clone, Serialize)]
pub struct BaseModel {
    pub name: String,
    /// `finetune`, `quantized`, `merge`, `adapter` (HF `base_model_relation`), when stated.
    pub relation: Option<String>,
    pub source: String,
    /// The base file's SHA-256, when the derived file records it (`glassbox.lineage.base.sha256`).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// How glassbox made this file from another (`glassbox.lineage.*` in its GGUF metadata).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Derivation {
    pub base_sha256: String,
    pub base_name: String,
    pub method: String,
    pub parameters: String,
    pub tool: String,
    pub time_unix: Option<u64>,
}

/// Everything found in the files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    pub root: PathBuf,
    pub name: Option<String>,
    pub weights: Vec<WeightFile>,
    pub licence_files: Vec<LicenceFile>,
    /// Licence names as metadata states them (value = the name), in source order.
    pub stated_licences: Vec<Fact>,
    pub base_models: Vec<BaseModel>,
    /// Set when glassbox made this file from another (quantised, edited, merged).
    pub derivation: Option<Derivation>,
    pub card: Option<PathBuf>,
    /// Every other fact (architecture, organisation, tags, datasets, links…).
    pub facts: Vec<Fact>,
    /// Files present that matter to openness (config, code, data cards…), relative to root.
    pub other_files: Vec<PathBuf>,
}

impl Evidence {
    pub fn fact(&self, key: &str) -> Option<&Fact> {
        self.facts.iter().find(|f| f.key == key)
    }
    pub fn facts_named<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Fact> + 'a {
        self.facts.iter().filter(move |f| f.key == key)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

fn weight_format(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    [(".gguf", "gguf"), (".safetensors", "safetensors"), (".bin", "pytorch-pickle"), (".pt", "pytorch-pickle"), (".pth", "pytorch-pickle"), (".ckpt", "pytorch-pickle"), (".onnx", "onnx"), (".npz", "numpy")]
        .iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map(|(_, f)| *f)
}

fn is_licence_file(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let stem = upper.split('.').next().unwrap_or("");
    ["LICENSE", "LICENCE", "COPYING", "NOTICE", "USE_POLICY", "TERMS"].iter().any(|p| stem.starts_with(p))
        || upper.contains("_TERMS")
        || upper.contains("LICENSE")
        || upper.ends_with(".LICENSE")
}

fn is_card(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (lower.starts_with("readme") || lower.starts_with("model_card") || lower.starts_with("modelcard")) && (lower.ends_with(".md") || lower.ends_with(".markdown"))
}

/// The files of a model: `path` itself, or every file under the folder (two levels, hidden
/// files skipped), sorted.
fn list(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = vec![];
    let mut stack = vec![(path.to_owned(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            let ft = std::fs::metadata(&p).map_err(io(&p))?;
            if ft.is_dir() {
                if depth < 2 {
                    stack.push((p, depth + 1));
                }
            } else if ft.is_file() {
                out.push(p);
                if out.len() > MAX_FILES {
                    return Err(Error::TooMany { path: path.to_owned(), limit: MAX_FILES });
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).ok().filter(|r| !r.as_os_str().is_empty()).unwrap_or(p).display().to_string()
}

/// Gather the evidence for `path` (a weights file or a model folder).
pub fn gather(path: &Path) -> Result<Evidence, Error> {
    gather_files(path, list(path)?)
}

/// Evidence for one weights file as `run`/`serve` load it: the file itself plus the model card
/// and licence files beside it (other weights in the folder are not part of this model).
pub fn gather_for_file(path: &Path) -> Result<Evidence, Error> {
    let mut files = vec![path.to_owned()];
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            !n.starts_with('.') && weight_format(&n).is_none() && (is_card(&n) || is_licence_file(&n))
        })
        .take(MAX_FILES)
        .collect();
    siblings.sort();
    files.extend(siblings);
    let mut ev = gather_files(path, files)?;
    ev.root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(ev)
}

fn gather_files(path: &Path, files: Vec<PathBuf>) -> Result<Evidence, Error> {
    let root = if path.is_dir() { path.to_owned() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let mut ev = Evidence { root: root.clone(), ..Evidence::default() };
    let weights: Vec<PathBuf> = files.iter().filter(|p| weight_format(&p.file_name().unwrap_or_default().to_string_lossy()).is_some()).cloned().collect();
    let hashed = glassbox_trust::hash_files(&weights, 2).map_err(|e| Error::Trust(e.to_string()))?;
    for (p, size, sha256) in hashed {
        let format = weight_format(&p.file_name().unwrap_or_default().to_string_lossy()).unwrap_or("unknown").to_owned();
        if format == "gguf" {
            gguf_facts(&p, &rel(&root, &p), &mut ev)?;
        }
        ev.weights.push(WeightFile { path: p, format, size, sha256 });
    }
    for p in &files {
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        if weight_format(&name).is_some() {
            continue;
        }
        if is_card(&name) && ev.card.is_none() {
            let bytes = read_limited(p, MAX_CARD_BYTES)?;
            card_facts(p, &bytes, &rel(&root, p), &mut ev)?;
            ev.card = Some(p.clone());
            // Some cards carry the licence text in their body: count it when it is identified.
            if let Ok(text) = to_plain(&rel(&root, p), &bytes, Format::Markdown) {
                let identification = identify(&text);
                if identification.is_known() && identification.confidence >= glassbox_license::identify::ACCEPT {
                    ev.licence_files.push(LicenceFile { path: p.clone(), identification, text });
                }
            }
        } else if is_licence_file(&name) {
            let bytes = read_limited(p, glassbox_license::normalize::MAX_TEXT_BYTES as u64)?;
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_string();
            let text = to_plain(&rel(&root, p), &bytes, Format::detect(&name, &head)).map_err(Error::License)?;
            let identification = identify(&text);
            ev.licence_files.push(LicenceFile { path: p.clone(), identification, text });
        } else {
            ev.other_files.push(p.strip_prefix(&root).unwrap_or(p).to_owned());
        }
    }
    Ok(ev)
}

fn read_limited(p: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let len = std::fs::metadata(p).map_err(io(p))?.len();
    if len > limit {
        return Err(Error::TooLarge { path: p.to_owned(), bytes: len, limit });
    }
    std::fs::read(p).map_err(io(p))
}

fn gguf_value_string(v: &glassbox_gguf::Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_owned());
    }
    if let Some(n) = v.as_u64() {
        return Some(n.to_string());
    }
    match v {
        glassbox_gguf::Value::Array(glassbox_gguf::Array::String(items)) if !items.is_empty() => Some(items.join(", ")),
        _ => None,
    }
}

fn gguf_facts(p: &Path, name: &str, ev: &mut Evidence) -> Result<(), Error> {
    let file = glassbox_gguf::GgufFile::open(p).map_err(|e| Error::Gguf(e.to_string()))?;
    let g = file.gguf();
    let src = |k: &str| format!("GGUF metadata {k} in {name}");
    for (k, v) in g.metadata() {
        if !k.starts_with("general.") || k == "general.file_type" || k == "general.quantization_version" {
            continue;
        }
        let Some(val) = gguf_value_string(v) else { continue };
        match k.as_str() {
            "general.license" | "general.license.name" => ev.stated_licences.push(Fact { key: k.clone(), value: val, source: src(k) }),
            "general.name" => {
                ev.name.get_or_insert(val.clone());
                ev.facts.push(Fact { key: k.clone(), value: val, source: src(k) });
            }
            _ => ev.facts.push(Fact { key: k.clone(), value: val, source: src(k) }),
        }
    }
    let count = g.get_u64("general.base_model.count").ok().flatten().unwrap_or(0).min(64);
    for i in 0..count {
        let key = |f: &str| format!("general.base_model.{i}.{f}");
        let field = |f: &str| g.get_str(&key(f)).ok().flatten().map(str::to_owned);
        let label = field("repo_url").or_else(|| match (field("organization"), field("name")) {
            (Some(o), Some(n)) => Some(format!("{o}/{n}")),
            (None, Some(n)) => Some(n),
            _ => None,
        });
        if let Some(label) = label {
            ev.base_models.push(BaseModel { name: label, relation: None, source: src(&key("*")), sha256: None });
        }
    }
    let lin = |f: &str| g.get_str(&format!("glassbox.lineage.{f}")).ok().flatten().map(str::to_owned);
    if let Some(sha) = lin("base.sha256").filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
        let d = Derivation {
            base_sha256: sha.to_ascii_lowercase(),
            base_name: lin("base.name").unwrap_or_default(),
            method: lin("method").unwrap_or_default(),
            parameters: lin("parameters").unwrap_or_default(),
            tool: lin("tool").unwrap_or_default(),
            time_unix: g.get_u64("glassbox.lineage.time_unix").ok().flatten(),
        };
        let name = if d.base_name.is_empty() { format!("sha256:{}", d.base_sha256) } else { d.base_name.clone() };
        ev.base_models.push(BaseModel { name, relation: Some(d.method.clone()), source: src("glassbox.lineage.*"), sha256: Some(d.base_sha256.clone()) });
        ev.derivation = Some(d);
        // Adapters merged into it (`glassbox merge`): ancestors too, each with its digest.
        for i in 0..64 {
            let Some(sha) = lin(&format!("adapter.{i}.sha256")).filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())) else { break };
            let name = lin(&format!("adapter.{i}.name")).unwrap_or_else(|| format!("sha256:{sha}"));
            ev.base_models.push(BaseModel { name, relation: Some("LoRA adapter merged".into()), source: src(&format!("glassbox.lineage.adapter.{i}.*")), sha256: Some(sha.to_ascii_lowercase()) });
        }
    }
    if let Some(arch) = g.get_str("general.architecture").ok().flatten()
        && let Some(n) = g.get_u64(&format!("{arch}.block_count")).ok().flatten() {
            ev.facts.push(Fact { key: "architecture.block_count".into(), value: n.to_string(), source: src(&format!("{arch}.block_count")) });
        }
    Ok(())
}

/// YAML front matter of a Markdown file: the text between a first line `---` and the next.
pub fn front_matter(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = rest.strip_prefix("---\n").or_else(|| rest.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---").map(|i| i + 1)?;
    Some(&rest[..end])
}

fn yaml_strings(v: &serde_norway::Value) -> Vec<String> {
    match v {
        serde_norway::Value::String(s) => vec![s.clone()],
        serde_norway::Value::Number(n) => vec![n.to_string()],
        serde_norway::Value::Bool(b) => vec![b.to_string()],
        serde_norway::Value::Sequence(items) => items.iter().flat_map(yaml_strings).collect(),
        _ => vec![],
    }
}

fn card_facts(p: &Path, bytes: &[u8], name: &str, ev: &mut Evidence) -> Result<(), Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Card { path: p.to_owned(), msg: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()) })?;
    let Some(yaml) = front_matter(text) else {
        ev.facts.push(Fact { key: "card".into(), value: "present, no YAML front matter".into(), source: name.to_owned() });
        return Ok(());
    };
    if yaml.len() > MAX_FRONT_MATTER {
        return Err(Error::Card { path: p.to_owned(), msg: format!("front matter of {} bytes is over the {MAX_FRONT_MATTER}-byte limit", yaml.len()) });
    }
    let doc: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| Error::Card { path: p.to_owned(), msg: format!("front matter is not valid YAML: {e}") })?;
    let serde_norway::Value::Mapping(map) = doc else {
        return Err(Error::Card { path: p.to_owned(), msg: "front matter is not a YAML mapping".into() });
    };
    let src = |k: &str| format!("{name} front matter `{k}`");
    let relation = map.get("base_model_relation").and_then(|v| v.as_str()).map(str::to_owned);
    for (k, v) in &map {
        let Some(k) = k.as_str() else { continue };
        let values = yaml_strings(v);
        match k {
            "license" | "license_name" => {
                for val in values {
                    ev.stated_licences.push(Fact { key: format!("card.{k}"), value: val, source: src(k) });
                }
            }
            "base_model" => {
                for val in values {
                    ev.base_models.push(BaseModel { name: val, relation: relation.clone(), source: src(k), sha256: None });
                }
            }
            "license_link" | "datasets" | "tags" | "pipeline_tag" | "library_name" | "language" | "model_name" | "base_model_relation" | "model-index" => {
                let value = if k == "model-index" { "present".to_owned() } else { values.join(", ") };
                if !value.is_empty() {
                    ev.facts.push(Fact { key: format!("card.{k}"), value, source: src(k) });
                }
            }
            _ => {}
        }
    }
    Ok(())
}
