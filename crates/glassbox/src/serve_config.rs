//! `glassbox serve --config serve.toml`: every setting a flag makes, from a TOML file. Keys are
//! serve's long flag names (`api-key-file` or `api_key_file`), `models` the files to serve; a
//! flag's value is a string or number, `true` sets a switch, an array repeats a flag. The file's
//! settings come first and the command line's after them, so a flag given on the command line
//! overrides the file's (repeatable flags and models add up). Unknown keys, wrong kinds of
//! value and nested tables are errors naming the file and the key.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, CommandFactory};

/// Largest config file read.
const MAX_BYTES: u64 = 1 << 20;

/// `argv` with `serve --config FILE` replaced by the file's settings as flags; unchanged when
/// the command is not `serve` or has no `--config`.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    if argv.get(1).is_none_or(|a| a != "serve") {
        return Ok(argv);
    }
    let mut rest = Vec::with_capacity(argv.len());
    let mut file = None;
    let mut it = argv.into_iter();
    let (exe, cmd) = (it.next().expect("checked above"), it.next().expect("checked above"));
    while let Some(a) = it.next() {
        let path = if a == "--config" {
            Some(it.next().context("--config needs a file")?)
        } else {
            a.to_str().and_then(|s| s.strip_prefix("--config=")).map(OsString::from)
        };
        match path {
            Some(p) if file.is_some() => bail!("--config given twice (second: {})", Path::new(&p).display()),
            Some(p) => file = Some(p),
            None => rest.push(a),
        }
    }
    let Some(file) = file else {
        let mut out = vec![exe, cmd];
        out.extend(rest);
        return Ok(out);
    };
    let mut out = vec![exe, cmd];
    out.extend(settings(Path::new(&file))?);
    out.extend(rest);
    Ok(out)
}

/// The file's settings as serve's flags (models last).
fn settings(path: &Path) -> Result<Vec<OsString>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read config {shown}"))?;
    if meta.len() > MAX_BYTES {
        bail!("config {shown} is {} bytes; at most {MAX_BYTES}", meta.len());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {shown}"))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("config {shown} is not valid TOML"))?;
    let cmd = crate::cli::Cli::command();
    let serve = cmd.find_subcommand("serve").expect("serve is a subcommand");
    let mut flags = Vec::new();
    let mut models = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        if name == "models" {
            let files = match value {
                toml::Value::String(s) => vec![s.clone()],
                toml::Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().with_context(|| format!("config {shown}: models must be file names (strings)"))?,
                _ => bail!("config {shown}: models must be a file name or a list of them"),
            };
            // Relative to the config file, as a lockfile's paths are.
            let base = path.parent().unwrap_or(Path::new("."));
            models.extend(files.into_iter().map(|f| base.join(f).into_os_string()));
            continue;
        }
        let Some(arg) = serve.get_arguments().find(|a| a.get_long() == Some(name.as_str())) else {
            bail!("config {shown}: unknown setting {key:?} (settings are serve's long flags: port, parallel, api-key-file, …, and models)");
        };
        if name == "config" {
            bail!("config {shown}: a config file cannot name another");
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let flag = OsString::from(format!("--{name}"));
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => bail!("config {shown}: {key} takes a string or a number"),
            })
        };
        match (switch, value) {
            (true, toml::Value::Boolean(true)) => flags.push(flag),
            (true, toml::Value::Boolean(false)) => {}
            (true, _) => bail!("config {shown}: {key} is a switch: true or false"),
            (false, toml::Value::Array(items)) => {
                for v in items {
                    flags.push(flag.clone());
                    flags.push(scalar(v)?.into());
                }
            }
            (false, v) => {
                flags.push(flag);
                flags.push(scalar(v)?.into());
            }
        }
    }
    flags.extend(models);
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_with(toml: &str, cli: &[&str]) -> Result<Vec<String>> {
        let dir = std::env::temp_dir().join(format!("glassbox-serve-config-{}-{}", std::process::id(), toml.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("serve.toml");
        std::fs::write(&f, toml).unwrap();
        let mut argv: Vec<OsString> = ["glassbox", "serve", "--config", f.to_str().unwrap()].iter().map(OsString::from).collect();
        argv.extend(cli.iter().map(OsString::from));
        let r = expand(argv).map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect());
        std::fs::remove_dir_all(&dir).ok();
        r
    }

    #[test]
    fn settings_become_flags_before_the_command_line() {
        let got = expand_with("models = [\"m.gguf\"]\nport = 9000\nlog_content = true\ninsecure-no-auth = false\nlora = [\"a=x.gguf\", \"b=y.gguf\"]\n", &["--port", "9100"]).unwrap();
        let i = got.iter().position(|a| a == "m.gguf" || a.ends_with("/m.gguf")).unwrap();
        assert_eq!(&got[2..i], ["--log-content", "--lora", "a=x.gguf", "--lora", "b=y.gguf", "--port", "9000"]);
        assert_eq!(&got[i + 1..], ["--port", "9100"]);
        // The command line's --port comes last and wins when parsed.
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(&got).unwrap();
        let crate::cli::Command::Serve(a) = cli.command else { panic!("not serve") };
        assert_eq!((a.port, a.log_content, a.lora.len()), (9100, true, 2));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |t: &str| expand_with(t, &[]).unwrap_err().to_string();
        assert!(err("prot = 8080\n").contains("unknown setting \"prot\""));
        assert!(err("log_content = \"yes\"\n").contains("log_content is a switch"));
        assert!(err("port = { a = 1 }\n").contains("port takes a string or a number"));
        assert!(err("port = \n").contains("not valid TOML"));
        assert!(err("config = \"x.toml\"\n").contains("cannot name another"));
    }

    #[test]
    fn other_commands_are_untouched() {
        let argv: Vec<OsString> = ["glassbox", "run", "--config", "x"].iter().map(OsString::from).collect();
        assert_eq!(expand(argv.clone()).unwrap(), argv);
    }
}
