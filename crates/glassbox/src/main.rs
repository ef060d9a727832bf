//! The `glassbox` binary: parses arguments and wires the library crates together. No model,
//! tokenizer or parsing logic lives here.

mod cli;
mod cmd_abliterate;
mod cmd_audit;
mod cmd_compare;
mod cmd_direction;
mod cmd_eval;
mod cmd_info;
mod cmd_lora;
mod cmd_perplexity;
mod cmd_quantize;
mod cmd_redact;
mod cmd_run;
mod cmd_serve;
mod cmd_trust;
mod serve_config;

use std::io::Write;

use clap::Parser;

/// The argument that turns this binary into a chat-template worker (see glassbox_template::sandbox).
const TEMPLATE_WORKER_ARG: &str = "__template-worker";

fn main() {
    // A file grown past RLIMIT_FSIZE fails the write (EFBIG) instead of killing the process:
    // the audit log then refuses requests with 503 rather than the server dying mid-response.
    // SAFETY: setting a signal's disposition to SIG_IGN at start-up, before any thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // First thing: a worker process renders templates and nothing else.
    if std::env::args_os().nth(1).is_some_and(|a| a == TEMPLATE_WORKER_ARG) {
        glassbox_template::sandbox::worker_main();
    }
    // Chat templates are model code: every render runs in a memory-capped worker process.
    match glassbox_template::sandbox::SandboxConfig::current_exe(TEMPLATE_WORKER_ARG) {
        Ok(cfg) => {
            glassbox_template::sandbox::install(cfg);
        }
        Err(e) => {
            eprintln!("error: cannot locate this executable to start chat-template workers: {e}");
            std::process::exit(1);
        }
    }
    // `serve --config FILE`: the file's settings become flags ahead of the command line's.
    let argv = match serve_config::expand(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let args = cli::Cli::parse_from(argv);
    let result = match args.command {
        cli::Command::Run(a) => cmd_run::run(a),
        cli::Command::Chat(a) => cmd_run::chat(a),
        cli::Command::Tokenize(a) => cmd_run::tokenize(a),
        cli::Command::Bench(a) => cmd_run::bench(a),
        cli::Command::Perplexity(a) => cmd_perplexity::perplexity(a),
        cli::Command::Eval(a) => match a.sub {
            Some(cli::EvalCommand::Compare(c)) => exit_with(cmd_compare::compare(*c)),
            None => exit_with(cmd_eval::eval(a).map(|()| 0)),
        },
        cli::Command::Info(a) => cmd_info::info(a),
        cli::Command::Serve(a) => cmd_serve::serve(a),
        cli::Command::Lock(a) => cmd_trust::lock(a),
        cli::Command::Verify(a) => cmd_trust::verify(a),
        cli::Command::Sign(a) => cmd_trust::sign(a),
        cli::Command::Scan(a) => cmd_trust::scan(a),
        cli::Command::Pull(a) => cmd_trust::pull(a),
        cli::Command::Audit(a) => cmd_audit::audit(a),
        cli::Command::Bom(a) => cmd_audit::bom(a),
        cli::Command::Quantize(a) => cmd_quantize::quantize(a),
        cli::Command::Direction(a) => cmd_direction::direction(a),
        cli::Command::Abliterate(a) => cmd_abliterate::abliterate(a),
        cli::Command::Steer(a) => cmd_abliterate::steer(a),
        cli::Command::Merge(a) => cmd_lora::merge(a),
        cli::Command::Redact(a) => cmd_redact::redact(a),
        cli::Command::AuditLog(a) => match a.sub {
            cli::AuditLogCommand::Verify(v) => exit_with(cmd_serve::verify_log(v)),
        },
        cli::Command::Lora(a) => match a.sub {
            cli::LoraCommand::Convert(c) => cmd_lora::convert(c),
        },
    };
    if let Err(e) = result {
        // A closed pipe (e.g. `glassbox run … | head`) is not an error.
        if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
            std::process::exit(0);
        }
        let _ = std::io::stdout().flush();
        eprint!("{}", report(&e));
        std::process::exit(1);
    }
}

/// Exit with the code a checking command computed (0 ok, 1 check failed), or 2 with the error
/// printed when it could not run (usage, I/O).
pub(crate) fn exit_with(result: anyhow::Result<i32>) -> ! {
    let code = result.unwrap_or_else(|e| {
        eprint!("{}", report(&e));
        2
    });
    std::process::exit(code)
}

/// `error: …` then each cause on its own line, leaving out a cause whose text the message
/// before it already quotes (library errors name their source inline).
pub(crate) fn report(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}\n");
    let mut said = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        said = text;
    }
    out
}
