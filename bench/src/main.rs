//! natsd-bench: a lean load generator for NATS servers.
//!
//! It shares the machine with the server under test, so it stays cheap:
//! blocking `std::net` sockets, one thread per client, publishers writing
//! 64 KiB batches of PUBs, and `natsd-proto`'s parser on what comes back.
//! Every run is bounded by a message count and a duration, and touches only
//! the server URL it is given.
//!
//! ```text
//! natsd-bench pubsub --server nats://127.0.0.1:4222 --msgs 1000000 --size 16
//! natsd-bench reqrep --duration 5 --json --server-pid $(pidof natsd)
//! natsd-bench idle --conns 1000 --server-pid $(pidof natsd)
//! ```
//!
//! Exit status: 0, 1 on a setup error (connect, auth, options), 3 when a
//! run lost messages or saw errors (the report is printed all the same).
#![forbid(unsafe_code)]

mod conn;
mod hist;
mod js;
mod opts;
mod procfs;
mod report;
mod scenarios;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::conn::Auth;
use crate::opts::{parse_url, Opts};
use crate::report::Report;
use crate::scenarios::Ctx;

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(&opts) {
        Ok(report) => {
            if opts.json {
                println!("{}", report.json());
            } else if opts.csv {
                println!("{}\n{}", Report::csv_header(), report.csv_row());
            } else {
                print!("{}", report.text());
            }
            if report.lost > 0 || !report.errors.is_empty() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("natsd-bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &Opts) -> Result<Report, String> {
    let url = parse_url(&opts.server)?;
    if opts.tls || url.tls {
        return Err("TLS not supported yet".into());
    }
    let (msgs, duration) = opts.bounds()?;
    let (pubs, subs) = opts.clients();
    let auth = Auth {
        user: opts.user.clone().or_else(|| url.user.clone()),
        pass: opts.password.clone().or_else(|| url.pass.clone()),
        token: opts.token.clone().or_else(|| url.token.clone()),
    };
    let secs = |v: f64, flag: &str| {
        Duration::try_from_secs_f64(v).map_err(|_| format!("{flag} must be a non-negative number"))
    };
    let ctx = Ctx {
        scenario: opts.scenario,
        url,
        auth,
        msgs,
        duration,
        size: opts.size,
        pubs,
        subs,
        subject: opts.subject.clone().unwrap_or_else(fresh_subject),
        conns: opts.conns,
        hold: secs(opts.hold, "--hold")?,
        drain_timeout: secs(opts.drain_timeout, "--drain-timeout")?,
        server_pid: opts.server_pid,
        peer_pids: opts.peer_pids.clone(),
        sub_urls: opts
            .sub_server
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<_, _>>()?,
        progress: !opts.quiet,
        storage: opts.storage,
        window: opts.window,
        no_ack: opts.no_ack,
        push: opts.push,
        push_ack: opts.push_ack,
    };
    scenarios::run(&ctx)
}

/// `bench.<pid>.<nanos>`: no two runs share a subject.
fn fresh_subject() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bench.{}.{nanos}", std::process::id())
}
