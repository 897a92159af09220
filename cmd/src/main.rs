//! `natsd`: parse nats-server's flags, set up logging, run the server.
//!
//! The start-up banner (`Starting nats-server`, version, name, id) is logged
//! by `natsd_io::run`, which knows the server's name and id.
mod flags;
mod logger;
mod pidfile;
mod signal;
mod sysres;

use std::process::ExitCode;

use flags::{Action, FlagError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut run = match flags::parse(args.clone()) {
        Ok(Action::Run(run)) => *run,
        Ok(Action::Help) => {
            print!("{}", flags::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Action::Version) => {
            println!("{}", flags::version());
            return ExitCode::SUCCESS;
        }
        Ok(Action::Signal(spec, pid_file)) => {
            return match signal::send(&spec, pid_file.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("natsd: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Action::ConfigValid(file)) => {
            eprintln!("{}", flags::config_valid(&file));
            return ExitCode::SUCCESS;
        }
        Err(err @ FlagError::Usage(_)) => {
            eprintln!("{err}");
            eprint!("{}", flags::usage());
            return ExitCode::FAILURE;
        }
        Err(err @ FlagError::Fatal(_)) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = logger::init(&run.opts) {
        eprintln!("natsd: {e}");
        return ExitCode::FAILURE;
    }
    for warning in &run.warnings {
        log::warn!("{warning}");
    }
    for block in &run.opts.conf_blocks {
        log::warn!("{} is not supported yet, ignoring it", block.key);
    }
    sysres::fill_jetstream_limits(&mut run.opts);
    let _pid_file = match run.opts.pid_file.as_deref() {
        Some(path) => match pidfile::PidFile::create(path) {
            Ok(pid_file) => Some(pid_file),
            Err(e) => {
                let path = path.display();
                log::error!(target: logger::FATAL, "Could not write pidfile: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // A reload reads the config file again and re-applies the command line
    // on top, exactly as at start (nats-server: flags override the file).
    let hooks = natsd_io::Hooks {
        reload: Box::new(move || match flags::parse(args.clone()) {
            Ok(Action::Run(mut run)) => {
                sysres::fill_jetstream_limits(&mut run.opts);
                Ok(run.opts)
            }
            Ok(_) => Err("the command line no longer starts a server".to_string()),
            Err(e) => Err(e.to_string()),
        }),
        reopen_log: Box::new(logger::reconfigure),
        apply_log_options: Box::new(|opts| {
            if let Err(e) = logger::reconfigure(opts) {
                log::error!("Could not apply the reloaded logging options: {e}");
            }
        }),
    };
    match natsd_io::run(run.opts, hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(target: logger::FATAL, "{e}");
            ExitCode::FAILURE
        }
    }
}
