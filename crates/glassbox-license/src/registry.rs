//! The built-in licence registry: one TOML file per licence under `data/licenses/` (identity,
//! distinctive phrases, clause table) and its reference text under `data/texts/`. The clause
//! tables are curated by hand; a test checks that every quote occurs in its reference text.

use serde::Deserialize;

use crate::Error;

/// What a licence says on one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    /// May the model be used commercially?
    CommercialUse,
    /// May it be modified, fine-tuned, merged, distilled?
    Derivatives,
    /// May its outputs be used to train or improve other models?
    TrainOtherModels,
    /// User-count (e.g. monthly active users) thresholds.
    UserThreshold,
    /// An acceptable-use policy binds the user.
    AcceptableUse,
    /// The licensor may change that policy (or the terms) on its own.
    UnilateralChange,
    /// Attribution duties (notices, "Built with …").
    Attribution,
    /// Naming duties for derivatives.
    Naming,
    /// Conditions on redistribution.
    Distribution,
    /// Use restrictions must be passed on to downstream recipients.
    DownstreamRestrictions,
    /// The licensor may restrict use remotely or terminate.
    RemoteRestriction,
    /// Termination on breach or litigation.
    Termination,
    /// Governing law and venue.
    GoverningLaw,
}

impl Topic {
    pub const ALL: [Topic; 13] = [
        Topic::CommercialUse,
        Topic::Derivatives,
        Topic::TrainOtherModels,
        Topic::UserThreshold,
        Topic::AcceptableUse,
        Topic::UnilateralChange,
        Topic::Attribution,
        Topic::Naming,
        Topic::Distribution,
        Topic::DownstreamRestrictions,
        Topic::RemoteRestriction,
        Topic::Termination,
        Topic::GoverningLaw,
    ];

    /// The kebab-case name used in data files, JSON and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::CommercialUse => "commercial-use",
            Topic::Derivatives => "derivatives",
            Topic::TrainOtherModels => "train-other-models",
            Topic::UserThreshold => "user-threshold",
            Topic::AcceptableUse => "acceptable-use",
            Topic::UnilateralChange => "unilateral-change",
            Topic::Attribution => "attribution",
            Topic::Naming => "naming",
            Topic::Distribution => "distribution",
            Topic::DownstreamRestrictions => "downstream-restrictions",
            Topic::RemoteRestriction => "remote-restriction",
            Topic::Termination => "termination",
            Topic::GoverningLaw => "governing-law",
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            Topic::CommercialUse => "commercial use",
            Topic::Derivatives => "derivatives",
            Topic::TrainOtherModels => "outputs to train other models",
            Topic::UserThreshold => "user threshold",
            Topic::AcceptableUse => "acceptable-use policy",
            Topic::UnilateralChange => "unilateral changes",
            Topic::Attribution => "attribution",
            Topic::Naming => "naming of derivatives",
            Topic::Distribution => "distribution",
            Topic::DownstreamRestrictions => "restrictions flow downstream",
            Topic::RemoteRestriction => "remote restriction",
            Topic::Termination => "termination",
            Topic::GoverningLaw => "governing law",
        }
    }
}

/// The gist of a clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Permitted without conditions worth a policy's attention.
    Allowed,
    /// Permitted under conditions (the summary says which).
    Conditional,
    /// Not permitted.
    Forbidden,
    /// A duty the user must fulfil.
    Required,
    /// The licence says nothing on this topic.
    NotAddressed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Conditional => "conditional",
            Verdict::Forbidden => "forbidden",
            Verdict::Required => "required",
            Verdict::NotAddressed => "not addressed",
        }
    }
}

/// One row of a clause table.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    pub topic: Topic,
    pub verdict: Verdict,
    pub summary: String,
    /// The licence's own sentence, verbatim from the reference text.
    #[serde(default)]
    pub quote: String,
    /// For `user-threshold`: the user count above which the licence stops granting rights.
    #[serde(default)]
    pub max_users: Option<u64>,
}

/// The broad kind of terms, for policies and the openness grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// OSI-style permissive (Apache, MIT, BSD, CC-BY).
    Permissive,
    /// Share-alike / copyleft (GPL, CC-BY-SA).
    Copyleft,
    /// Non-commercial only.
    Noncommercial,
    /// A custom licence with use restrictions (Llama, Gemma, OpenRAIL, …): open-weight, not open source.
    Restricted,
    /// A use policy attached to a licence, not a licence itself.
    Policy,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Permissive => "permissive",
            Category::Copyleft => "copyleft",
            Category::Noncommercial => "noncommercial",
            Category::Restricted => "restricted",
            Category::Policy => "policy",
        }
    }
}

/// One licence (or use policy) the registry knows.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Our key (ScanCode's where it has one).
    pub key: String,
    /// SPDX id, or `LicenseRef-scancode-*`; `None` when neither exists.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub family: String,
    /// `license` or `use-policy`.
    pub document: String,
    pub category: Category,
    pub osi_approved: bool,
    /// Hugging Face model-card `license:` values that name this licence.
    #[serde(default)]
    pub hf_names: Vec<String>,
    /// Phrases (in `words` form) that must all occur for a text to be this version.
    pub phrases: Vec<String>,
    pub url: String,
    #[serde(default, rename = "clause")]
    pub clauses: Vec<Clause>,
    #[serde(skip)]
    pub text: &'static str,
}

impl Entry {
    /// The clause on `topic`, if the table has one.
    pub fn clause(&self, topic: Topic) -> Option<&Clause> {
        self.clauses.iter().find(|c| c.topic == topic)
    }

    /// `id`, or the explicit word `unknown`.
    pub fn id_or_unknown(&self) -> &str {
        self.id.as_deref().unwrap_or("unknown")
    }
}

const DATA: &[(&str, &str, &str)] = &[
    ("apache-2.0", include_str!("../data/licenses/apache-2.0.toml"), include_str!("../data/texts/apache-2.0.txt")),
    ("bigcode-open-rail-m-v1", include_str!("../data/licenses/bigcode-open-rail-m-v1.toml"), include_str!("../data/texts/bigcode-open-rail-m-v1.txt")),
    ("bigscience-open-rail-m", include_str!("../data/licenses/bigscience-open-rail-m.toml"), include_str!("../data/texts/bigscience-open-rail-m.txt")),
    ("bigscience-rail-1.0", include_str!("../data/licenses/bigscience-rail-1.0.toml"), include_str!("../data/texts/bigscience-rail-1.0.txt")),
    ("bsd-new", include_str!("../data/licenses/bsd-new.toml"), include_str!("../data/texts/bsd-new.txt")),
    ("cc-by-4.0", include_str!("../data/licenses/cc-by-4.0.toml"), include_str!("../data/texts/cc-by-4.0.txt")),
    ("cc-by-nc-4.0", include_str!("../data/licenses/cc-by-nc-4.0.toml"), include_str!("../data/texts/cc-by-nc-4.0.txt")),
    ("cc-by-sa-4.0", include_str!("../data/licenses/cc-by-sa-4.0.toml"), include_str!("../data/texts/cc-by-sa-4.0.txt")),
    ("deepseek-la-1.0", include_str!("../data/licenses/deepseek-la-1.0.toml"), include_str!("../data/texts/deepseek-la-1.0.txt")),
    ("falcon-2-11b-1.0", include_str!("../data/licenses/falcon-2-11b-1.0.toml"), include_str!("../data/texts/falcon-2-11b-1.0.txt")),
    ("gemma-pup-2024-02-21", include_str!("../data/licenses/gemma-pup-2024-02-21.toml"), include_str!("../data/texts/gemma-pup-2024-02-21.txt")),
    ("gemma-tou-2024-04-01", include_str!("../data/licenses/gemma-tou-2024-04-01.toml"), include_str!("../data/texts/gemma-tou-2024-04-01.txt")),
    ("gemma-tou-2025-03-24", include_str!("../data/licenses/gemma-tou-2025-03-24.toml"), include_str!("../data/texts/gemma-tou-2025-03-24.txt")),
    ("gpl-3.0", include_str!("../data/licenses/gpl-3.0.toml"), include_str!("../data/texts/gpl-3.0.txt")),
    ("llama-2-aup", include_str!("../data/licenses/llama-2-aup.toml"), include_str!("../data/texts/llama-2-aup.txt")),
    ("llama-2-license-2023", include_str!("../data/licenses/llama-2-license-2023.toml"), include_str!("../data/texts/llama-2-license-2023.txt")),
    ("llama-3-aup", include_str!("../data/licenses/llama-3-aup.toml"), include_str!("../data/texts/llama-3-aup.txt")),
    ("llama-3-license-2024", include_str!("../data/licenses/llama-3-license-2024.toml"), include_str!("../data/texts/llama-3-license-2024.txt")),
    ("llama-3.1-aup", include_str!("../data/licenses/llama-3.1-aup.toml"), include_str!("../data/texts/llama-3.1-aup.txt")),
    ("llama-3.1-license-2024", include_str!("../data/licenses/llama-3.1-license-2024.toml"), include_str!("../data/texts/llama-3.1-license-2024.txt")),
    ("llama-3.2-aup", include_str!("../data/licenses/llama-3.2-aup.toml"), include_str!("../data/texts/llama-3.2-aup.txt")),
    ("llama-3.2-license-2024", include_str!("../data/licenses/llama-3.2-license-2024.toml"), include_str!("../data/texts/llama-3.2-license-2024.txt")),
    ("llama-3.3-aup", include_str!("../data/licenses/llama-3.3-aup.toml"), include_str!("../data/texts/llama-3.3-aup.txt")),
    ("llama-3.3-license-2024", include_str!("../data/licenses/llama-3.3-license-2024.toml"), include_str!("../data/texts/llama-3.3-license-2024.txt")),
    ("llama-4-community-license-2025", include_str!("../data/licenses/llama-4-community-license-2025.toml"), include_str!("../data/texts/llama-4-community-license-2025.txt")),
    ("llama-4-license-2025", include_str!("../data/licenses/llama-4-license-2025.toml"), include_str!("../data/texts/llama-4-license-2025.txt")),
    ("llama-license-2023", include_str!("../data/licenses/llama-license-2023.toml"), include_str!("../data/texts/llama-license-2023.txt")),
    ("mit", include_str!("../data/licenses/mit.toml"), include_str!("../data/texts/mit.txt")),
    ("nvidia-open-model-2025-04-28", include_str!("../data/licenses/nvidia-open-model-2025-04-28.toml"), include_str!("../data/texts/nvidia-open-model-2025-04-28.txt")),
    ("qwen-2024", include_str!("../data/licenses/qwen-2024.toml"), include_str!("../data/texts/qwen-2024.txt")),
    ("tongyi-qianwen-2023", include_str!("../data/licenses/tongyi-qianwen-2023.toml"), include_str!("../data/texts/tongyi-qianwen-2023.txt")),
];

/// Every built-in entry, parsed once.
pub fn builtin() -> &'static [Entry] {
    static CELL: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| parse_all().unwrap_or_else(|e| panic!("built-in licence data is invalid: {e}")))
}

fn parse_all() -> Result<Vec<Entry>, Error> {
    DATA.iter()
        .map(|(key, toml_text, text)| {
            let mut e: Entry = toml::from_str(toml_text).map_err(|e| Error::Data { key: (*key).to_owned(), msg: e.to_string() })?;
            if e.key != *key {
                return Err(Error::Data { key: (*key).to_owned(), msg: format!("file declares key {:?}", e.key) });
            }
            e.text = text;
            Ok(e)
        })
        .collect()
}

/// The entry with this key.
pub fn by_key(key: &str) -> Option<&'static Entry> {
    builtin().iter().find(|e| e.key == key)
}
