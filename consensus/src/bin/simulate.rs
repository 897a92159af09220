//! `simulate --seeds FROM..TO [--nodes 3|5] [--mutation NAME] [--without FAULT,..] [--trace]`:
//! runs one simulated cluster per seed (FROM included, TO excluded) and ends with
//! `seeds: N, violations: V`; exits 1 if V > 0. For each violation it prints the seed, then
//! minimizes it (turns off every fault kind the failure does not need) and prints the
//! command that replays the minimal run and that run's last steps. `NATSD_SIM_SEED=S` runs
//! seed S alone; `--trace` prints every step of each run; `--without` turns fault kinds off.

use std::process::ExitCode;

use natsd_consensus::sim::{minimize, run, Fault, Options, Report};

fn usage() -> ExitCode {
    eprintln!("usage: simulate --seeds FROM..TO [--nodes 3|5] [--mutation NAME] [--without FAULT,..] [--trace]");
    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    eprintln!("faults: {}", names.join(","));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..100u64;
    let mut opts = Options::new(3);
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seeds" => {
                let Some((a, b)) = value.split_once("..") else {
                    return usage();
                };
                let (Ok(a), Ok(b)) = (a.parse(), b.parse()) else {
                    return usage();
                };
                seeds = a..b;
                i += 1;
            }
            "--nodes" => {
                match value.parse() {
                    Ok(n @ (3 | 5)) => opts.nodes = n,
                    _ => return usage(),
                }
                i += 1;
            }
            #[cfg(feature = "mutation")]
            "--mutation" => {
                let Some(m) = natsd_consensus::Mutation::from_name(&value) else {
                    eprintln!("mutations: double-vote, ack-before-persist, commit-old-term, kv-no-sessions");
                    return ExitCode::from(2);
                };
                opts.mutation = Some(m);
                i += 1;
            }
            "--without" => {
                for name in value.split(',').filter(|n| !n.is_empty()) {
                    let Some(f) = Fault::from_name(name) else {
                        return usage();
                    };
                    opts.without.push(f);
                }
                i += 1;
            }
            "--trace" => opts.full_trace = true,
            _ => return usage(),
        }
        i += 1;
    }
    if let Some(seed) = std::env::var("NATSD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        seeds = seed..seed + 1;
    }
    let count = seeds.end.saturating_sub(seeds.start);
    let reports = run_all(seeds.clone(), &opts);
    let mut violations = 0;
    let mut total = Report::default();
    for (seed, report) in seeds.zip(reports) {
        total.steps += report.steps;
        total.messages += report.messages;
        total.crashes += report.crashes;
        total.partitions += report.partitions;
        total.completed += report.completed;
        if opts.full_trace {
            report.trace.iter().for_each(|l| println!("  {l}"));
        }
        if let Some(v) = &report.violation {
            violations += 1;
            println!("seed {seed}: VIOLATION: {v}");
            if !opts.full_trace {
                print_minimal(seed, &opts);
            }
        }
    }
    println!(
        "steps: {}, messages: {}, crashes: {}, partitions: {}, client operations completed: {}",
        total.steps, total.messages, total.crashes, total.partitions, total.completed
    );
    println!("seeds: {count}, violations: {violations}");
    if violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Minimizes a failing seed and prints how to replay it and its last steps.
fn print_minimal(seed: u64, opts: &Options) {
    let (without, report) = minimize(seed, opts);
    let names: Vec<&str> = without.iter().map(|f| f.name()).collect();
    let mut replay = format!(
        "NATSD_SIM_SEED={seed} simulate --nodes {} --trace",
        opts.nodes
    );
    if !names.is_empty() {
        replay.push_str(&format!(" --without {}", names.join(",")));
    }
    #[cfg(feature = "mutation")]
    if let Some(m) = opts.mutation {
        replay.push_str(&format!(" --mutation {}", m.name()));
    }
    let v = report.violation.unwrap_or_default();
    println!("  minimal: {v}; replay: {replay}");
    report.trace.iter().for_each(|l| println!("  {l}"));
}

/// Runs the seeds on every core (seed k on thread k mod cores); reports come back in
/// seed order.
fn run_all(seeds: std::ops::Range<u64>, opts: &Options) -> Vec<Report> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut reports: Vec<(u64, Report)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lane = seeds.clone().skip(t as usize).step_by(threads as usize);
                s.spawn(move || lane.map(|seed| (seed, run(seed, opts))).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    reports.sort_by_key(|r| r.0);
    reports.into_iter().map(|r| r.1).collect()
}
