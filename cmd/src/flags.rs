//! Command line → [`Options`], with Go's `flag` package rules so natsd takes
//! the same argv as nats-server.
//!
//! Go accepts `-name` and `--name` alike, `-name=value` and `-name value` for
//! value flags, `-name` and `-name=bool` (not `-name bool`) for bool flags,
//! and stops at the first argument that is not a flag. [`go_style`] does that
//! tokenising against [`FLAGS`] and hands clap a normalised argv in which every
//! flag is `--long=value`; clap then stores the values.
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use natsd_engine::conf::{ConfError, ErrorKind};
use natsd_engine::options::{ConfErrors, Options, DEFAULT_PORT};

use natsd_engine::server::{COMPAT_VERSION as NATS_SERVER_VERSION, NATSD_VERSION};

/// What a flag's value is, for Go-style parsing and validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `-name` means true; `-name=false` is the only way to give a value.
    Bool,
    /// Takes the next argument (or `=value`) as a string.
    Str,
    /// Like `Str` but must parse as a Go `int`.
    Int,
}

/// One flag: its clap id (the nats-server long name) and every spelling.
struct Flag {
    id: &'static str,
    names: &'static [&'static str],
    kind: Kind,
}

const fn flag(id: &'static str, names: &'static [&'static str], kind: Kind) -> Flag {
    Flag { id, names, kind }
}

/// Every flag natsd accepts. The first name is the clap long name.
const FLAGS: &[Flag] = &[
    flag("addr", &["addr", "a", "net"], Kind::Str),
    flag("port", &["port", "p"], Kind::Int),
    flag("name", &["name", "n", "server_name"], Kind::Str),
    flag("client_advertise", &["client_advertise"], Kind::Str),
    flag("user", &["user"], Kind::Str),
    flag("pass", &["pass"], Kind::Str),
    flag("auth", &["auth"], Kind::Str),
    flag("log", &["log", "l"], Kind::Str),
    flag("logtime", &["logtime", "T"], Kind::Bool),
    flag("logtime_utc", &["logtime_utc"], Kind::Bool),
    flag("debug", &["debug", "D"], Kind::Bool),
    flag("trace", &["trace", "V"], Kind::Bool),
    flag("VV", &["VV"], Kind::Bool),
    flag("DV", &["DV"], Kind::Bool),
    flag("DVV", &["DVV"], Kind::Bool),
    flag("pid", &["pid", "P"], Kind::Str),
    flag("ports_file_dir", &["ports_file_dir"], Kind::Str),
    flag("signal", &["signal", "sl"], Kind::Str),
    flag("config", &["config", "c"], Kind::Str),
    flag("t", &["t"], Kind::Bool),
    flag("jetstream", &["jetstream", "js"], Kind::Bool),
    flag("store_dir", &["store_dir", "sd"], Kind::Str),
    flag("http_port", &["http_port", "m"], Kind::Int),
    flag("https_port", &["https_port", "ms"], Kind::Int),
    flag("log_size_limit", &["log_size_limit"], Kind::Int),
    flag("routes", &["routes"], Kind::Str),
    flag("cluster", &["cluster"], Kind::Str),
    flag("cluster_name", &["cluster_name"], Kind::Str),
    flag("cluster_listen", &["cluster_listen"], Kind::Str),
    flag("cluster_advertise", &["cluster_advertise"], Kind::Str),
    flag("no_advertise", &["no_advertise"], Kind::Bool),
    flag("connect_retries", &["connect_retries"], Kind::Int),
    flag("tls", &["tls"], Kind::Bool),
    flag("tlscert", &["tlscert"], Kind::Str),
    flag("tlskey", &["tlskey"], Kind::Str),
    flag("tlsverify", &["tlsverify"], Kind::Bool),
    flag("tlscacert", &["tlscacert"], Kind::Str),
    flag("reactors", &["reactors"], Kind::Int),
    flag("version", &["version", "v"], Kind::Bool),
    flag("help", &["help", "h"], Kind::Bool),
];

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Start a server.
    Run(Box<Run>),
    /// `-h`/`--help`/`help`: print [`usage`] and exit 0.
    Help,
    /// `-v`/`--version`/`version`: print [`version`] and exit 0.
    Version,
    /// `-t -c FILE` found the file valid: print [`config_valid`] and exit 0.
    ConfigValid(String),
    /// `-sl/--signal <cmd>[=<pid or pid file>]`: signal a running server.
    /// The second field is the `-P` pid file, used when no pid is given.
    Signal(String, Option<String>),
}

/// A server to start, and warnings to log once the logger is up.
#[derive(Debug, PartialEq)]
pub struct Run {
    pub opts: Options,
    pub warnings: Vec<String>,
}

/// Why the command line was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    /// A flag error as Go's `flag` package reports it; print it, then [`usage`].
    Usage(String),
    /// Not a flag syntax error (nats-server prints `nats-server: <msg>`).
    Fatal(String),
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagError::Usage(msg) => f.write_str(msg),
            FlagError::Fatal(msg) => write!(f, "natsd: {msg}"),
        }
    }
}

/// Parse the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Action, FlagError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let (normalised, command) = go_style(&args)?;
    let matches = clap_command()
        .try_get_matches_from(normalised)
        .map_err(|e| FlagError::Usage(e.to_string()))?;
    if let Some(command) = command {
        return match command.to_ascii_lowercase().as_str() {
            "version" => Ok(Action::Version),
            "help" => Ok(Action::Help),
            _ => Err(FlagError::Fatal(format!(
                "unrecognized command: {command:?}"
            ))),
        };
    }
    if bool_flag(&matches, "version") {
        return Ok(Action::Version);
    }
    if bool_flag(&matches, "help") {
        return Ok(Action::Help);
    }
    if let Some(signal) = string_flag(&matches, "signal") {
        return Ok(Action::Signal(signal, string_flag(&matches, "pid")));
    }
    let check = bool_flag(&matches, "t");
    // nats-server: the file first, then the flags given override it.
    let (mut opts, warnings) = match string_flag(&matches, "config") {
        Some(file) => {
            let (opts, warnings) = Options::from_conf_file(Path::new(&file))
                .map_err(|e| FlagError::Fatal(conf_error_text(&e)))?;
            // nats-server's -t fails on warnings too.
            if check && !warnings.is_empty() {
                let report = ConfErrors {
                    warnings,
                    errors: Vec::new(),
                };
                return Err(FlagError::Fatal(report.to_string()));
            }
            if check {
                return Ok(Action::ConfigValid(file));
            }
            let warnings = warnings.iter().map(ToString::to_string).collect();
            (opts, warnings)
        }
        None if check => {
            return Err(FlagError::Fatal(
                "must specify [-c, --config] option to check configuration file syntax".to_string(),
            ))
        }
        None => (Options::default(), Vec::new()),
    };
    apply_flags(&mut opts, &matches)?;
    opts.set_baseline();
    Ok(Action::Run(Box::new(Run { opts, warnings })))
}

/// A configuration that does not load, as nats-server reports it: a syntax error as
/// `Parse error on line N: '...'` (its lexer's words), every other problem as
/// `file:line:col: ...`, one a line.
fn conf_error_text(report: &ConfErrors) -> String {
    match (report.warnings.as_slice(), report.errors.as_slice()) {
        (
            [],
            [ConfError {
                at: Some(at),
                kind: ErrorKind::Syntax(msg),
            }],
        ) => format!("Parse error on line {}: '{msg}'", at.line),
        _ => report.to_string(),
    }
}

/// `-v` output: first nats-server's own line with the release natsd
/// announces (harnesses read the server's version from it), then natsd's.
pub fn version() -> String {
    format!("nats-server: v{NATS_SERVER_VERSION}\nnatsd: v{NATSD_VERSION}")
}

/// What `-t -c FILE` prints (to stderr) when the file is valid.
pub fn config_valid(file: &str) -> String {
    format!("natsd: configuration file {file} is valid")
}

/// `-h` output, laid out as nats-server's.
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "
Usage: natsd [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to natsd process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natsd.pid)
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
        --log_size_limit <limit>     Logfile size limit (default: auto, not acted on yet)
    -T, --logtime                    Timestamp log entries (default: true)
        --logtime_utc                Timestamps in UTC instead of local timezone
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (traces system account as well)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (traces system account as well)

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --cluster_listen <url>       Cluster url from which members can solicit routes
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries

natsd Options:
        --reactors <n>               Reactor threads (default: 0, one per core)

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version

";

fn find_flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.names.contains(&name))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Tokenise `args` as Go's `flag.FlagSet.Parse` does. Returns clap's argv, with
/// every flag as `--long=value`, and the first non-flag argument (Go stops
/// there; nats-server reads it as a command).
fn go_style(args: &[String]) -> Result<(Vec<String>, Option<String>), FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            return Ok((out, rest.next().cloned()));
        }
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            return Ok((out, Some(arg.clone())));
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let flag = find_flag(name)
            .ok_or_else(|| FlagError::Usage(format!("flag provided but not defined: -{name}")))?;
        let value = match flag.kind {
            Kind::Bool => {
                let value = inline.unwrap_or("true");
                parse_go_bool(value).ok_or_else(|| {
                    FlagError::Usage(format!(
                        "invalid boolean value {value:?} for -{name}: parse error"
                    ))
                })?;
                value.to_string()
            }
            Kind::Str | Kind::Int => {
                let value = match inline {
                    Some(value) => value,
                    None => rest.next().ok_or_else(|| {
                        FlagError::Usage(format!("flag needs an argument: -{name}"))
                    })?,
                };
                if flag.kind == Kind::Int {
                    value.parse::<i64>().map_err(|e| {
                        let why = match e.kind() {
                            std::num::IntErrorKind::PosOverflow
                            | std::num::IntErrorKind::NegOverflow => "value out of range",
                            _ => "parse error",
                        };
                        FlagError::Usage(format!("invalid value {value:?} for flag -{name}: {why}"))
                    })?;
                }
                value.to_string()
            }
        };
        out.push(format!("--{}={value}", flag.id));
    }
    Ok((out, None))
}

fn clap_command() -> Command {
    let args = FLAGS.iter().map(|f| {
        let arg = Arg::new(f.id)
            .long(f.id)
            .aliases(f.names.iter().copied().filter(|n| *n != f.id))
            .require_equals(true)
            .num_args(1)
            .action(ArgAction::Set);
        match f.kind {
            Kind::Bool => arg.value_parser(|v: &str| parse_go_bool(v).ok_or("parse error")),
            Kind::Int => arg.value_parser(clap::value_parser!(i64)),
            Kind::Str => arg,
        }
    });
    Command::new("natsd")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .allow_negative_numbers(true)
        .args(args)
}

fn bool_flag(matches: &ArgMatches, id: &str) -> bool {
    matches.get_one::<bool>(id).copied().unwrap_or(false)
}

fn string_flag(matches: &ArgMatches, id: &str) -> Option<String> {
    matches.get_one::<String>(id).cloned()
}

/// Apply the flags that were given over `opts` (defaults or the config file).
fn apply_flags(opts: &mut Options, matches: &ArgMatches) -> Result<(), FlagError> {
    if let Some(host) = string_flag(matches, "addr") {
        opts.host = host;
    }
    if let Some(&port) = matches.get_one::<i64>("port") {
        opts.port = port_from_flag(port)?;
    }
    let set = |field: &mut Option<String>, id: &str| {
        if let Some(value) = string_flag(matches, id) {
            *field = Some(value);
        }
    };
    set(&mut opts.server_name, "name");
    set(&mut opts.client_advertise, "client_advertise");
    set(&mut opts.user, "user");
    set(&mut opts.pass, "pass");
    set(&mut opts.token, "auth");
    let set_path = |field: &mut Option<PathBuf>, id: &str| {
        if let Some(value) = string_flag(matches, id) {
            *field = Some(PathBuf::from(value));
        }
    };
    set_path(&mut opts.log_file, "log");
    set_path(&mut opts.pid_file, "pid");
    set_path(&mut opts.ports_file_dir, "ports_file_dir");
    set_path(&mut opts.store_dir, "store_dir");
    if let Some(&on) = matches.get_one::<bool>("jetstream") {
        opts.jetstream.enabled = on;
    }
    if let Some(&logtime) = matches.get_one::<bool>("logtime") {
        opts.logtime = logtime;
    }
    if let Some(&utc) = matches.get_one::<bool>("logtime_utc") {
        opts.logtime_utc = utc;
    }
    if let Some(&debug) = matches.get_one::<bool>("debug") {
        opts.debug = debug;
    }
    for id in ["trace", "VV"] {
        if let Some(&trace) = matches.get_one::<bool>(id) {
            opts.trace = trace;
        }
    }
    // As nats-server: -DV/-DVV set both, after -D and -V.
    for id in ["DV", "DVV"] {
        if let Some(&both) = matches.get_one::<bool>(id) {
            opts.debug = both;
            opts.trace = both;
        }
    }
    for (id, field) in [
        ("http_port", &mut opts.http_port),
        ("https_port", &mut opts.https_port),
    ] {
        if let Some(&port) = matches.get_one::<i64>(id) {
            // As nats-server: -1 picks a random port, 0 leaves monitoring off.
            *field = i32::try_from(port)
                .ok()
                .filter(|p| (-1..=i32::from(u16::MAX)).contains(p))
                .ok_or_else(|| {
                    FlagError::Usage(format!(
                        "invalid value \"{port}\" for flag -{id}: port out of range"
                    ))
                })?;
        }
    }
    apply_tls_flags(opts, matches)?;
    apply_cluster_flags(opts, matches)?;
    if let Some(&limit) = matches.get_one::<i64>("log_size_limit") {
        opts.log_size_limit = limit;
    }
    if let Some(&reactors) = matches.get_one::<i64>("reactors") {
        opts.reactors = usize::try_from(reactors).map_err(|_| {
            FlagError::Usage(format!(
                "invalid value \"{reactors}\" for flag -reactors: must not be negative"
            ))
        })?;
    }
    Ok(())
}

/// `--cluster`/`--cluster_listen`, `--routes`, `--cluster_name`,
/// `--cluster_advertise`, `--no_advertise`, `--connect_retries`, each over
/// what the file's `cluster {}` set.
fn apply_cluster_flags(opts: &mut Options, matches: &ArgMatches) -> Result<(), FlagError> {
    let cluster = &mut opts.cluster;
    for id in ["cluster", "cluster_listen"] {
        if let Some(url) = string_flag(matches, id) {
            cluster.set_listen_url(&url).map_err(|e| {
                FlagError::Usage(format!("invalid value {url:?} for flag -{id}: {e}"))
            })?;
        }
    }
    if let Some(list) = string_flag(matches, "routes") {
        cluster.set_routes(&list).map_err(|e| {
            FlagError::Usage(format!("invalid value {list:?} for flag -routes: {e}"))
        })?;
    }
    if let Some(name) = string_flag(matches, "cluster_name") {
        cluster.name = Some(name);
    }
    if let Some(advertise) = string_flag(matches, "cluster_advertise") {
        cluster.advertise = Some(advertise);
    }
    if let Some(&on) = matches.get_one::<bool>("no_advertise") {
        cluster.no_advertise = on;
    }
    if let Some(&n) = matches.get_one::<i64>("connect_retries") {
        cluster.connect_retries = u32::try_from(n).map_err(|_| {
            FlagError::Usage(format!("invalid value \"{n}\" for flag -connect_retries"))
        })?;
    }
    Ok(())
}

/// `--tls`, `--tlscert`, `--tlskey`, `--tlsverify`, `--tlscacert`, each over
/// what the file set. As nats-server: `--tlsverify` implies `--tls`, and the
/// result needs a certificate and key.
fn apply_tls_flags(opts: &mut Options, matches: &ArgMatches) -> Result<(), FlagError> {
    let mut given = false;
    if let Some(&on) = matches.get_one::<bool>("tls") {
        opts.tls = on;
        given = true;
    }
    if let Some(&verify) = matches.get_one::<bool>("tlsverify") {
        opts.tls_verify = verify;
        opts.tls |= verify;
        given = true;
    }
    for (id, field) in [
        ("tlscert", &mut opts.tls_cert),
        ("tlskey", &mut opts.tls_key),
        ("tlscacert", &mut opts.tls_ca_cert),
    ] {
        if let Some(path) = string_flag(matches, id) {
            *field = Some(PathBuf::from(path));
            given = true;
        }
    }
    if !given || !opts.tls {
        return Ok(());
    }
    if opts.tls_cert.is_none() {
        return Err(FlagError::Fatal(
            "missing 'cert_file' in TLS configuration".into(),
        ));
    }
    if opts.tls_key.is_none() {
        return Err(FlagError::Fatal(
            "missing 'key_file' in TLS configuration".into(),
        ));
    }
    if opts.tls_verify && opts.tls_ca_cert.is_none() {
        return Err(FlagError::Fatal(
            "--tlsverify needs --tlscacert (natsd does not use the system CA pool)".into(),
        ));
    }
    Ok(())
}

/// nats-server's port rules: -1 is a random port (0 to the OS), 0 the default.
fn port_from_flag(port: i64) -> Result<u16, FlagError> {
    match port {
        -1 => Ok(0),
        0 => Ok(DEFAULT_PORT),
        _ => u16::try_from(port).map_err(|_| {
            FlagError::Usage(format!(
                "invalid value \"{port}\" for flag -port: must be -1 (random) or 0..=65535"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Run {
        match parse(args.iter().copied()) {
            Ok(Action::Run(run)) => *run,
            other => panic!("{args:?}: expected Run, got {other:?}"),
        }
    }

    fn opts(args: &[&str]) -> Options {
        run(args).opts
    }

    fn usage_error(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(FlagError::Usage(msg)) => msg,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_gives_defaults() {
        assert_eq!(
            run(&[]),
            Run {
                opts: Options::default(),
                warnings: vec![]
            }
        );
    }

    #[test]
    fn port_minus_one_is_random() {
        assert_eq!(opts(&["-p", "-1"]).port, 0);
        assert_eq!(opts(&["--port", "-1"]).port, 0);
        assert_eq!(opts(&["-p=-1"]).port, 0);
    }

    #[test]
    fn port_forms() {
        assert_eq!(opts(&["-p=4223"]).port, 4223);
        assert_eq!(opts(&["--port", "4224"]).port, 4224);
        assert_eq!(opts(&["--p", "4225"]).port, 4225);
        assert_eq!(opts(&["-port=4226"]).port, 4226);
        assert_eq!(opts(&["-p", "0"]).port, DEFAULT_PORT);
    }

    #[test]
    fn port_errors_are_go_shaped() {
        assert_eq!(usage_error(&["-p"]), "flag needs an argument: -p");
        assert_eq!(
            usage_error(&["-p", "abc"]),
            "invalid value \"abc\" for flag -p: parse error"
        );
        assert!(usage_error(&["-p", "70000"]).contains("70000"));
        assert!(usage_error(&["-p", "-5"]).contains("-5"));
    }

    #[test]
    fn last_value_wins() {
        assert_eq!(opts(&["-p", "1", "--port", "2"]).port, 2);
        assert_eq!(opts(&["-a", "h1", "--net", "h2"]).host, "h2");
    }

    #[test]
    fn jetstream_flags() {
        let run = run(&["-js", "-sd", "/tmp/sd"]);
        assert!(run.opts.jetstream.enabled);
        assert_eq!(run.opts.store_dir, Some(PathBuf::from("/tmp/sd")));
        assert!(run.warnings.is_empty());
        assert!(self::run(&["--js"]).opts.jetstream.enabled);
        assert!(self::run(&["--jetstream"]).opts.jetstream.enabled);
        assert!(!self::run(&["-js=false"]).opts.jetstream.enabled);
        assert!(!self::run(&[]).opts.jetstream.enabled);
    }

    #[test]
    fn debug_and_trace_combinations() {
        let o = opts(&["-DV"]);
        assert!(o.debug && o.trace);
        let o = opts(&["-D"]);
        assert!(o.debug && !o.trace);
        let o = opts(&["-V"]);
        assert!(!o.debug && o.trace);
        let o = opts(&["-VV"]);
        assert!(!o.debug && o.trace);
        let o = opts(&["-DVV"]);
        assert!(o.debug && o.trace);
        let o = opts(&["--debug", "--trace"]);
        assert!(o.debug && o.trace);
        assert!(!opts(&["-D=false"]).debug);
    }

    #[test]
    fn logtime_takes_go_bools() {
        assert!(!opts(&["-T=false"]).logtime);
        assert!(!opts(&["--logtime=0"]).logtime);
        assert!(opts(&["-T"]).logtime);
        assert!(opts(&[]).logtime);
        assert!(opts(&["--logtime_utc"]).logtime_utc);
        assert_eq!(
            usage_error(&["-T=maybe"]),
            "invalid boolean value \"maybe\" for -T: parse error"
        );
    }

    #[test]
    fn bool_flag_does_not_take_the_next_argument() {
        match parse(["-T", "false"]) {
            Err(FlagError::Fatal(msg)) => assert_eq!(msg, "unrecognized command: \"false\""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn addr_and_aliases() {
        assert_eq!(opts(&["-a", "127.0.0.1"]).host, "127.0.0.1");
        assert_eq!(opts(&["--addr", "127.0.0.2"]).host, "127.0.0.2");
        assert_eq!(opts(&["--net", "127.0.0.3"]).host, "127.0.0.3");
        assert_eq!(opts(&["-net=::1"]).host, "::1");
    }

    #[test]
    fn name_and_aliases() {
        for name in ["-n", "--name", "--server_name", "-server_name"] {
            assert_eq!(opts(&[name, "s1"]).server_name.as_deref(), Some("s1"));
        }
    }

    #[test]
    fn auth_and_misc_values() {
        let o = opts(&[
            "--user",
            "u",
            "--pass",
            "-p-w",
            "--auth",
            "tok",
            "--client_advertise",
            "h:1",
            "--ports_file_dir",
            "/tmp/pd",
            "--reactors",
            "3",
        ]);
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.pass.as_deref(), Some("-p-w"));
        assert_eq!(o.token.as_deref(), Some("tok"));
        assert!(natsd_engine::auth::Authenticator::new(&o).required());
        assert_eq!(o.client_advertise.as_deref(), Some("h:1"));
        assert_eq!(o.ports_file_dir, Some(PathBuf::from("/tmp/pd")));
        assert_eq!(o.reactors, 3);
        assert!(usage_error(&["--reactors", "-1"]).contains("reactors"));
    }

    #[test]
    fn unknown_flag_is_a_go_usage_error() {
        assert_eq!(
            usage_error(&["-xyz"]),
            "flag provided but not defined: -xyz"
        );
        assert_eq!(
            usage_error(&["--xyz=1"]),
            "flag provided but not defined: -xyz"
        );
        assert_eq!(usage_error(&["---p"]), "bad flag syntax: ---p");
    }

    #[test]
    fn nats_rs_harness_flags() {
        let run = run(&[
            "--store_dir",
            "/tmp/store-dir-x",
            "-p",
            "-1",
            "-l",
            "/tmp/nats-server-x.log",
            "-P",
            "/tmp/nats-server-x.pid",
        ]);
        assert_eq!(run.opts.port, 0);
        assert_eq!(
            run.opts.log_file,
            Some(PathBuf::from("/tmp/nats-server-x.log"))
        );
        assert_eq!(
            run.opts.pid_file,
            Some(PathBuf::from("/tmp/nats-server-x.pid"))
        );
        assert_eq!(run.opts.store_dir, Some(PathBuf::from("/tmp/store-dir-x")));
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn nats_rs_cluster_harness_flags() {
        let run = run(&[
            "--store_dir",
            "/tmp/sd",
            "-p",
            "4300",
            "-l",
            "/tmp/l.log",
            "-P",
            "/tmp/p.pid",
            "--routes",
            "nats://127.0.0.1:4401,nats://127.0.0.1:4402",
            "--cluster",
            "nats://127.0.0.1:4400",
            "--cluster_name",
            "cluster",
            "-n",
            "node1",
        ]);
        assert_eq!(run.opts.port, 4300);
        assert_eq!(run.opts.server_name.as_deref(), Some("node1"));
        assert!(run.warnings.is_empty());
        let cluster = &run.opts.cluster;
        assert_eq!((cluster.host.as_str(), cluster.port), ("127.0.0.1", 4400));
        assert_eq!(cluster.name.as_deref(), Some("cluster"));
        let routes: Vec<String> = cluster.routes.iter().map(|r| r.addr()).collect();
        assert_eq!(routes, ["127.0.0.1:4401", "127.0.0.1:4402"]);
        assert!(usage_error(&["-m", "x"]).starts_with("invalid value \"x\" for flag -m"));
        assert!(usage_error(&["--routes", "127.0.0.1:1"]).starts_with("invalid value"));
    }

    fn conf_file(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("natsd-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write conf");
        path.display().to_string()
    }

    #[test]
    fn config_file_then_flags_override() {
        let file = conf_file(
            "override.conf",
            "port: 4333\nserver_name: from_file\ndebug: true\nmax_payload: 2MB\n",
        );
        let o = opts(&["-c", &file]);
        assert_eq!(
            (o.port, o.server_name.as_deref()),
            (4333, Some("from_file"))
        );
        assert!(o.debug);
        assert_eq!(o.max_payload, 2 * 1024 * 1024);
        assert_eq!(o.config_file.as_deref(), Some(std::path::Path::new(&file)));
        let o = opts(&["--config", &file, "-p", "4444", "-D=false", "-n", "flag"]);
        assert_eq!((o.port, o.server_name.as_deref()), (4444, Some("flag")));
        assert!(!o.debug, "an explicit flag beats the file");
        assert_eq!(o.max_payload, 2 * 1024 * 1024, "the file beats defaults");
    }

    #[test]
    fn config_warnings_are_run_warnings() {
        let file = conf_file("warn.conf", "ping_interval: 60\n");
        let run = run(&["-c", &file]);
        assert_eq!(run.opts.ping_interval, std::time::Duration::from_secs(60));
        assert_eq!(run.warnings.len(), 1);
        assert!(run.warnings[0].ends_with("ping_interval should be converted to a duration"));
    }

    #[test]
    fn check_config() {
        let good = conf_file("good.conf", "port: 4333\n");
        assert_eq!(
            parse(["-t", "-c", good.as_str()]),
            Ok(Action::ConfigValid(good.clone()))
        );
        assert_eq!(
            config_valid("ok.conf"),
            "natsd: configuration file ok.conf is valid"
        );
        let bad = conf_file("bad.conf", "port: 4333\nfoo: 1\n  bar = \"x\"\n");
        assert_eq!(
            parse(["-t", "-c", bad.as_str()]),
            Err(FlagError::Fatal(format!(
                "{bad}:2:1: unknown field \"foo\"\n{bad}:3:3: unknown field \"bar\""
            )))
        );
        // nats-server's -t fails on warnings as well.
        let warn = conf_file("warn_t.conf", "write_deadline: 2\n");
        assert!(matches!(
            parse(["-t", "-c", warn.as_str()]),
            Err(FlagError::Fatal(_))
        ));
        assert_eq!(
            parse(["-t"]),
            Err(FlagError::Fatal(
                "must specify [-c, --config] option to check configuration file syntax".into()
            ))
        );
        assert_eq!(
            parse(["-c", "/nonexistent/n.conf"]),
            Err(FlagError::Fatal(
                "open /nonexistent/n.conf: no such file or directory".into()
            ))
        );
        assert_eq!(
            FlagError::Fatal("x.conf:1:1: unknown field \"a\"".into()).to_string(),
            "natsd: x.conf:1:1: unknown field \"a\""
        );
    }

    #[test]
    fn syntax_errors_read_as_nats_servers_parse_errors() {
        let unclosed = conf_file("unclosed.conf", "port: 4222\nfoo {\n  bar: 1\n");
        assert_eq!(
            parse(["-c", unclosed.as_str()]),
            Err(FlagError::Fatal(
                "Parse error on line 4: 'Unexpected EOF processing map.'".into()
            ))
        );
        let unknown = conf_file("unknown.conf", "foo: 1\n");
        assert_eq!(
            parse(["-c", unknown.as_str()]),
            Err(FlagError::Fatal(format!(
                "{unknown}:1:1: unknown field \"foo\""
            )))
        );
    }

    #[test]
    fn cluster_flags_configure_routes() {
        let run = run(&[
            "--cluster_listen",
            "nats://127.0.0.1:6222",
            "--no_advertise",
            "--cluster_advertise",
            "10.0.0.1:6222",
            "--connect_retries",
            "5",
        ]);
        assert!(run.warnings.is_empty());
        let cluster = &run.opts.cluster;
        assert!(cluster.enabled() && cluster.no_advertise);
        assert_eq!(cluster.advertise.as_deref(), Some("10.0.0.1:6222"));
        assert_eq!(cluster.connect_retries, 5);
    }

    #[test]
    fn https_port_and_log_size_limit_flags() {
        let parsed = run(&["-ms", "8443", "--log_size_limit", "1000"]);
        assert_eq!(parsed.opts.log_size_limit, 1000);
        assert_eq!(parsed.opts.https_port, 8443);
        assert!(parsed.warnings.is_empty());
        assert_eq!(run(&["--https_port=-1"]).opts.https_port, -1);
        assert!(matches!(parse(["-ms", "70000"]), Err(FlagError::Usage(_))));
        let line = usage()
            .lines()
            .find(|l| l.contains("--https_port"))
            .expect("usage lists --https_port");
        assert!(!line.contains("not supported"), "{line}");
    }

    #[test]
    fn http_port_flag() {
        assert_eq!(run(&["-m", "8222"]).opts.http_port, 8222);
        assert_eq!(run(&["--http_port=-1"]).opts.http_port, -1);
        assert_eq!(run(&[]).opts.http_port, 0);
        assert!(run(&["-m", "8222"]).warnings.is_empty());
        assert!(matches!(parse(["-m", "70000"]), Err(FlagError::Usage(_))));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["-h"]), Ok(Action::Help));
        assert_eq!(parse(["--help"]), Ok(Action::Help));
        assert_eq!(parse(["help"]), Ok(Action::Help));
        assert_eq!(parse(["-v"]), Ok(Action::Version));
        assert_eq!(parse(["--version"]), Ok(Action::Version));
        assert_eq!(parse(["-p", "1", "VERSION"]), Ok(Action::Version));
        assert_eq!(parse(["-v", "-h"]), Ok(Action::Version));
        assert_eq!(
            version(),
            format!("nats-server: v{NATS_SERVER_VERSION}\nnatsd: v{NATSD_VERSION}")
        );
    }

    #[test]
    fn parsing_stops_at_the_first_non_flag() {
        assert_eq!(
            parse(["-p", "1", "Foo", "-xyz"]),
            Err(FlagError::Fatal("unrecognized command: \"Foo\"".into()))
        );
        assert_eq!(
            opts(&["-D", "--"]),
            Options {
                debug: true,
                ..Options::default()
            }
        );
        assert!(matches!(parse(["--", "-D"]), Err(FlagError::Fatal(_))));
    }

    #[test]
    fn usage_lists_every_flag() {
        let listed = |name: &str| {
            let spelled = format!("-{name}");
            usage().match_indices(&spelled).any(|(at, _)| {
                let after = usage()[at + spelled.len()..].chars().next();
                matches!(after, Some(' ' | ',' | '\n'))
            })
        };
        for name in FLAGS.iter().flat_map(|f| f.names) {
            assert!(listed(name), "usage lacks -{name}");
        }
    }

    #[test]
    fn tls_flags() {
        let o = opts(&["--tls", "--tlscert", "c.pem", "-tlskey=k.pem"]);
        assert!(o.tls);
        assert!(!o.tls_verify);
        assert_eq!(o.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(o.tls_key, Some(PathBuf::from("k.pem")));
        // nats-server: the auth timeout becomes the TLS timeout + 1 s.
        assert_eq!(o.auth_timeout, std::time::Duration::from_secs(3));
        let o = opts(&[
            "--tlsverify",
            "--tlscert",
            "c",
            "--tlskey",
            "k",
            "--tlscacert",
            "ca",
        ]);
        assert!(o.tls);
        assert!(o.tls_verify);
        assert_eq!(o.tls_ca_cert, Some(PathBuf::from("ca")));
        assert!(matches!(parse(["--tls"]), Err(FlagError::Fatal(m)) if m.contains("cert_file")));
        assert!(matches!(
            parse(["--tlsverify", "--tlscert", "c", "--tlskey", "k"]),
            Err(FlagError::Fatal(m)) if m.contains("tlscacert")
        ));
        assert!(!opts(&[]).tls);
    }
}
