//! The NATS configuration file format, as nats-server 2.9 reads it.
//!
//! ## Format
//!
//! | form | example | notes |
//! |---|---|---|
//! | assignment | `a = 1`, `a: 1`, `a 1` | a value ends at a new line, `;`, `,`, a comment, or `}` |
//! | map | `a { b: 1, c: 2 }` | the separator before `{` is optional |
//! | array | `a [1, 2, "x"]` | values end with `,` or a new line |
//! | comment | `# …`, `// …` | where a key or a value terminator is expected |
//! | string | `x`, `"x\t\x41"`, `'x'` | bare strings end at whitespace, `;`, `,`, `]`, `}` |
//! | block string | `a (`⏎`text`⏎`)` | ends at a `)` alone on its line |
//! | boolean | `true false yes no on off` | any case, bare only |
//! | integer | `-1`, `10k`, `1MB`, `2GiB` | `k m g t p e`: ×1000; with `b`, `i` or `ib`: ×1024 |
//! | float | `1.5` | digits on both sides of the dot |
//! | datetime | `2016-05-04T18:53:41Z` | Zulu form only; kept as text |
//! | variable | `$name` | enclosing maps innermost first, then the environment |
//! | include | `include ./other.conf` | relative to the including file, merged in place |
//!
//! Bare values that start with a digit but are not numbers stay strings
//! (`10s`, `1h30m`, `127.0.0.1:4222`); durations are such strings and
//! [`parse_duration`] reads them as Go's `time.ParseDuration` does.
//! `$2a$…` (bcrypt hashes) are strings, not variables. An environment
//! variable's value is parsed as a conf value, so `NUM=10k` gives `10000`.
//!
//! Where nats-server 2.9.10's lexer misreads valid input (`[1, 2]` with an
//! integer before `]`) this parser reads it; where it silently drops a value
//! (`10kibib`, a key with no value at the end of a file) this parser reports
//! an error. Include and environment cycles are errors, not stack overflows.
//!
//! [`parse`] works on a `&str` without any I/O; [`parse_file`] reads files and
//! the process environment through [`OsSource`]; [`parse_with`] takes any
//! [`Source`].
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Deepest nesting of maps and arrays, includes and environment variables.
const DEPTH_MAX: usize = 64;

/// Where a key or value starts: file name as given, 1-based line and column
/// (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An ISO-8601 Zulu datetime, as written.
    Datetime(String),
    Array(Vec<Item>),
    Map(Map),
}

impl Value {
    /// Go's type name for the value, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Int(_) => "int64",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::Datetime(_) => "time.Time",
            Value::Array(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }
}

/// A value and where it was written (for a variable: where it was used).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub at: Loc,
}

/// One `key = value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written (quotes removed); lookups are exact, callers fold case.
    pub key: String,
    /// Where the key starts; nats-server reports value errors here.
    pub key_at: Loc,
    pub value: Item,
    /// Some `$key` referred to this entry: nats-server does not report such
    /// keys as unknown fields.
    pub used_as_variable: bool,
}

/// A map in file order. A repeated key replaces the earlier value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    /// The entry for exactly `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Entries in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.key == entry.key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not in the conf format; the message is nats-server's lexer's.
    Syntax(String),
    /// A file could not be read: `open <path>: <reason>`.
    Open { path: String, reason: String },
    /// An included file could not be read or parsed.
    Include { name: String, reason: String },
    /// `$name` is neither a key of an enclosing map nor an environment variable.
    VariableNotFound(String),
    /// An environment variable's value refers back to itself.
    VariableCycle(String),
    /// An environment variable's value is not a conf value.
    VariableUnparsable { name: String, reason: String },
    /// A file includes itself, directly or not.
    IncludeCycle(String),
    /// A key nats-server does not know.
    UnknownField(String),
    /// A key that is known but whose value is not acceptable.
    Invalid(String),
    /// nats-server's warning: a deprecated form that still works.
    InvalidUse { field: String, reason: String },
}

/// A configuration error, naming file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// Where; `None` when the top-level file could not be opened.
    pub at: Option<Loc>,
    pub kind: ErrorKind,
}

impl ConfError {
    pub fn new(at: &Loc, kind: ErrorKind) -> ConfError {
        ConfError {
            at: Some(at.clone()),
            kind,
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        match &self.kind {
            ErrorKind::Syntax(msg) | ErrorKind::Invalid(msg) => f.write_str(msg),
            ErrorKind::Open { path, reason } => write!(f, "open {path}: {reason}"),
            ErrorKind::Include { name, reason } => {
                write!(f, "error parsing include file '{name}', {reason}")
            }
            ErrorKind::VariableNotFound(name) => {
                write!(f, "variable reference for '{name}' can not be found")
            }
            ErrorKind::VariableCycle(name) => {
                write!(f, "variable reference for '{name}' is a cycle")
            }
            ErrorKind::VariableUnparsable { name, reason } => write!(
                f,
                "variable reference for '{name}' could not be parsed: {reason}"
            ),
            ErrorKind::IncludeCycle(name) => write!(f, "include cycle with '{name}'"),
            ErrorKind::UnknownField(field) => write!(f, "unknown field {}", go_quote(field)),
            ErrorKind::InvalidUse { field, reason } => {
                write!(f, "invalid use of field {}: {reason}", go_quote(field))
            }
        }
    }
}

impl std::error::Error for ConfError {}

/// Go's `%q` for the strings config keys are made of.
pub fn go_quote(s: &str) -> String {
    go_quote_bytes(s.as_bytes())
}

/// Go's `%q` of a byte string: [`go_quote`]'s escapes, and `\xNN` for
/// each byte that is not part of valid UTF-8.
pub fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// Files and environment variables, as the parser sees them.
pub trait Source {
    /// Contents of `path`, or Go-style reason (`no such file or directory`).
    fn read_file(&mut self, path: &Path) -> Result<String, String>;
    /// The environment variable `name`.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real file system and process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsSource;

impl Source for OsSource {
    fn read_file(&mut self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| io_reason(&e))
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// No files and no environment: what [`parse`] uses.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    pub files: HashMap<PathBuf, String>,
    pub vars: HashMap<String, String>,
}

impl Source for MemSource {
    fn read_file(&mut self, path: &Path) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file or directory".to_string())
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// The reason part of Go's `*PathError` text.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_ascii_lowercase(),
                None => text,
            }
        }
    }
}

/// Parse conf text with no file system and no environment (includes fail,
/// `$VAR` resolves only from the text). The file name in errors is empty.
pub fn parse(text: &str) -> Result<Map, ConfError> {
    parse_with(text, "", &mut MemSource::default())
}

/// Read and parse `path`, its includes and environment variables from the OS.
pub fn parse_file(path: &Path) -> Result<Map, ConfError> {
    let mut source = OsSource;
    let name = path.display().to_string();
    let text = source.read_file(path).map_err(|reason| ConfError {
        at: None,
        kind: ErrorKind::Open {
            path: name.clone(),
            reason,
        },
    })?;
    parse_with(&text, &name, &mut source)
}

/// Parse `text`, read from the file `file` (used in positions and as the base
/// for relative includes), taking includes and variables from `source`.
pub fn parse_with(text: &str, file: &str, source: &mut dyn Source) -> Result<Map, ConfError> {
    let mut shared = Shared {
        source,
        includes: vec![PathBuf::from(file)],
        env_vars: Vec::new(),
    };
    Parser::new(text, file, &mut shared).document()
}

/// State shared by the parsers of one file and those of its includes.
struct Shared<'s> {
    source: &'s mut dyn Source,
    /// Files being parsed, outermost first: a cycle check.
    includes: Vec<PathBuf>,
    /// Environment variables being resolved, outermost first: a cycle check.
    env_vars: Vec<String>,
}

struct Parser<'t, 's, 'h> {
    text: &'t str,
    at: usize,
    line: u32,
    col: u32,
    file: Arc<str>,
    /// Maps being built, outermost first: where `$name` is looked up.
    scopes: Vec<Map>,
    depth: usize,
    shared: &'h mut Shared<'s>,
}

/// Where a value is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    Map,
}

fn is_nl(c: char) -> bool {
    c == '\n' || c == '\r'
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Go's `%v` of a rune in lexer errors: new lines are escaped, EOF is NUL.
fn shown(c: Option<char>) -> String {
    match c {
        Some('\n') => "\\n".to_string(),
        Some(c) => c.to_string(),
        None => "\u{0}".to_string(),
    }
}

impl<'t, 's, 'h> Parser<'t, 's, 'h> {
    fn new(text: &'t str, file: &str, shared: &'h mut Shared<'s>) -> Self {
        Parser {
            text,
            at: 0,
            line: 1,
            col: 1,
            file: Arc::from(file),
            scopes: Vec::new(),
            depth: 0,
            shared,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.text[self.at..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn loc(&self) -> Loc {
        Loc {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
        }
    }

    fn syntax(&self, msg: impl Into<String>) -> ConfError {
        ConfError::new(&self.loc(), ErrorKind::Syntax(msg.into()))
    }

    fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek2() == Some('/'),
            _ => false,
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if is_nl(c) {
                break;
            }
            self.bump();
        }
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.bump();
        }
    }

    fn document(mut self) -> Result<Map, ConfError> {
        self.scopes.push(Map::default());
        self.entries(Ctx::Top)?;
        // The scope pushed above is still there: `entries` pops only what it pushes.
        Ok(self.scopes.pop().unwrap_or_default())
    }

    /// Key/value entries into the innermost scope, up to EOF (top) or `}` (map).
    fn entries(&mut self, ctx: Ctx) -> Result<(), ConfError> {
        loop {
            // Between entries: space, new lines, comments and stray terminators.
            loop {
                match self.peek() {
                    Some(c) if c.is_whitespace() || c == ';' || c == ',' => {
                        self.bump();
                    }
                    // A top level wrapped in braces, JSON style.
                    Some('{' | '}') if ctx == Ctx::Top => {
                        self.bump();
                    }
                    _ if self.at_comment() => self.skip_comment(),
                    _ => break,
                }
            }
            match self.peek() {
                None if ctx == Ctx::Top => return Ok(()),
                None => return Err(self.syntax("Unexpected EOF processing map.")),
                Some('}') => {
                    self.bump();
                    return Ok(());
                }
                Some(c @ ('=' | ':')) => {
                    return Err(self.syntax(format!("Unexpected key separator '{c}'.")))
                }
                Some(']') if ctx == Ctx::Map => {
                    return Err(self.syntax("Unexpected array end ']' processing map."))
                }
                Some(_) => self.entry(ctx)?,
            }
            self.value_end(ctx)?;
        }
    }

    /// After a value: blanks, then a terminator, a comment or the closing brace.
    fn value_end(&mut self, ctx: Ctx) -> Result<(), ConfError> {
        self.skip_blanks();
        if self.at_comment() {
            self.skip_comment();
            return Ok(());
        }
        match self.peek() {
            None => Ok(()),
            Some(c) if is_nl(c) || c == ';' || c == ',' => {
                self.bump();
                Ok(())
            }
            Some('}') => Ok(()),
            c if ctx == Ctx::Top => Err(self.syntax(format!(
                "Expected a top-level value to end with a new line, comment or EOF, but got '{}' instead.",
                shown(c)
            ))),
            c => Err(self.syntax(format!(
                "Expected a map value terminator \",\" or a map terminator \"}}\", but got '{}' instead.",
                shown(c)
            ))),
        }
    }

    fn entry(&mut self, ctx: Ctx) -> Result<(), ConfError> {
        let key_at = self.loc();
        let (key, quoted) = match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let start = self.at;
                loop {
                    match self.bump() {
                        Some(c) if c == q => break,
                        Some(_) => {}
                        None if ctx == Ctx::Map => {
                            return Err(self.syntax("Unexpected EOF processing quoted map key."))
                        }
                        None => return Err(self.syntax("Unexpected EOF.")),
                    }
                }
                (self.text[start..self.at - 1].to_string(), true)
            }
            _ => {
                let start = self.at;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || c == '=' || c == ':' {
                        break;
                    }
                    self.bump();
                }
                (self.text[start..self.at].to_string(), false)
            }
        };
        if !quoted
            && key.eq_ignore_ascii_case("include")
            && self.peek().is_some_and(char::is_whitespace)
        {
            return self.include(&key_at);
        }
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        if matches!(self.peek(), Some('=' | ':')) {
            self.bump();
        }
        self.skip_blanks();
        match self.peek() {
            None => {
                return Err(ConfError::new(
                    &key_at,
                    ErrorKind::Syntax(format!("Expected a value for key {}", go_quote(&key))),
                ))
            }
            Some(c) if is_nl(c) => return Err(self.syntax("Expected value but found new line")),
            Some(_) => {}
        }
        let value = self.value()?;
        self.scope().insert(Entry {
            key,
            key_at,
            value,
            used_as_variable: false,
        });
        Ok(())
    }

    fn scope(&mut self) -> &mut Map {
        if self.scopes.is_empty() {
            self.scopes.push(Map::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn value(&mut self) -> Result<Item, ConfError> {
        let at = self.loc();
        let value = match self.peek() {
            Some('[') => self.nested(Self::array)?,
            Some('{') => self.nested(Self::map)?,
            Some('\'') => {
                self.bump();
                let start = self.at;
                loop {
                    match self.bump() {
                        Some('\'') => break,
                        Some(_) => {}
                        None => return Err(self.syntax("Unexpected EOF.")),
                    }
                }
                Value::String(self.text[start..self.at - 1].to_string())
            }
            Some('"') => {
                self.bump();
                Value::String(self.quoted()?)
            }
            Some('(') => {
                self.bump();
                Value::String(self.block()?)
            }
            Some('-') => {
                self.bump();
                match self.peek() {
                    Some(c) if c.is_ascii_digit() => {}
                    Some('.') => {
                        return Err(self.syntax("Floats must start with a digit, not '.'."))
                    }
                    c => {
                        return Err(self.syntax(format!("Expected a digit but got '{}'.", shown(c))))
                    }
                }
                self.number(at.clone(), self.at - 1)?
            }
            Some(c) if c.is_ascii_digit() => self.number(at.clone(), self.at)?,
            Some('.') => return Err(self.syntax("Floats must start with a digit")),
            Some(c) if is_nl(c) => return Err(self.syntax("Expected value but found new line")),
            None => return Err(self.syntax("Unexpected EOF.")),
            Some(_) => return self.bare(at, self.at),
        };
        Ok(Item { value, at })
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Value, ConfError>) -> Result<Value, ConfError> {
        if self.depth >= DEPTH_MAX {
            return Err(self.syntax("Maps and arrays are nested too deep."));
        }
        self.depth += 1;
        let value = f(self);
        self.depth -= 1;
        value
    }

    fn map(&mut self) -> Result<Value, ConfError> {
        self.bump();
        self.scopes.push(Map::default());
        let result = self.entries(Ctx::Map);
        let map = self.scopes.pop().unwrap_or_default();
        result.map(|()| Value::Map(map))
    }

    fn array(&mut self) -> Result<Value, ConfError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            loop {
                match self.peek() {
                    Some(c) if c.is_whitespace() => {
                        self.bump();
                    }
                    _ if self.at_comment() => self.skip_comment(),
                    _ => break,
                }
            }
            match self.peek() {
                Some(']') => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                Some(',') => return Err(self.syntax("Unexpected array value terminator ','.")),
                None => return Err(self.syntax("Unexpected EOF processing array.")),
                Some(_) => items.push(self.value()?),
            }
            self.skip_blanks();
            if self.at_comment() {
                self.skip_comment();
                continue;
            }
            match self.peek() {
                Some(c) if c == ',' || is_nl(c) => {
                    self.bump();
                }
                Some(']') => {}
                c => {
                    return Err(self.syntax(format!(
                        "Expected an array value terminator \",\" or an array terminator \"]\", but got '{}' instead.",
                        shown(c)
                    )))
                }
            }
        }
    }

    /// A double-quoted string after its opening quote.
    fn quoted(&mut self) -> Result<String, ConfError> {
        let mut out = Vec::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(String::from_utf8_lossy(&out).into_owned()),
                Some('\\') => self.escape(&mut out)?,
                Some(c) => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                None => return Err(self.syntax("Unexpected EOF.")),
            }
        }
    }

    /// An escape after its `\`: `\t \n \r \" \\ \xHH`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ConfError> {
        let c = self.bump();
        let byte = match c {
            Some('t') => b'\t',
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('"') => b'"',
            Some('\\') => b'\\',
            Some('x') => {
                let start = self.at;
                for _ in 0..2 {
                    match self.bump() {
                        Some(c) if is_nl(c) => {
                            return Err(self.syntax(
                                "Expected two hexadecimal digits after '\\x', but hit end of line",
                            ))
                        }
                        Some(_) => {}
                        None => return Err(self.syntax("Unexpected EOF.")),
                    }
                }
                let hex = &self.text[start..self.at];
                u8::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        self.syntax(format!(
                            "Expected two hexadecimal digits after '\\x', but got '{hex}'"
                        ))
                    })?
            }
            c => {
                return Err(self.syntax(format!(
                    "Invalid escape character '{}'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                    shown(c)
                )))
            }
        };
        out.push(byte);
        Ok(())
    }

    /// A block string after its `(`: up to a `)` alone on a line.
    fn block(&mut self) -> Result<String, ConfError> {
        let start = self.at;
        loop {
            let line_start = self.text[..self.at].ends_with('\n');
            match self.bump() {
                Some(')') if line_start && matches!(self.peek(), None | Some('\n')) => {
                    return Ok(self.text[start..self.at - 1].to_string());
                }
                Some(_) => {}
                None => return Err(self.syntax("Unexpected EOF processing block.")),
            }
        }
    }

    fn is_value_end(c: Option<char>) -> bool {
        match c {
            None => true,
            Some(c) => is_nl(c) || is_blank(c) || matches!(c, '}' | ']' | ';' | ','),
        }
    }

    /// A value starting with a digit (or `-` and a digit) from `start`.
    fn number(&mut self, at: Loc, start: usize) -> Result<Value, ConfError> {
        let negative = self.text[start..].starts_with('-');
        let digits_start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        match self.peek() {
            Some('-') if !negative => {
                if self.at - digits_start != 4 {
                    return Err(self.syntax("All ISO8601 dates must be in full Zulu form."));
                }
                return self.datetime(start);
            }
            Some('.') => {
                self.bump();
                if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.syntax(format!(
                        "Floats must have a digit after the '.', but got '{}' instead.",
                        shown(self.peek())
                    )));
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                if self.peek() == Some('.') {
                    // An address such as 127.0.0.1:4222.
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | '-'))
                    {
                        self.bump();
                    }
                    return Ok(Value::String(self.text[start..self.at].to_string()));
                }
                let text = &self.text[start..self.at];
                return match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                    _ => Err(ConfError::new(
                        &at,
                        ErrorKind::Syntax(format!("float '{text}' is out of the range")),
                    )),
                };
            }
            _ => {}
        }
        let digits_end = self.at;
        if self.peek().is_some_and(|c| "kKmMgGtTpPeE".contains(c)) {
            self.bump();
            while self.peek().is_some_and(|c| "bBiI".contains(c)) {
                self.bump();
            }
            let ends =
                Self::is_value_end(self.peek()) || self.peek().is_some_and(|c| c.is_ascii_digit());
            if !ends {
                return self.bare(at, start).map(|item| item.value);
            }
        } else if !Self::is_value_end(self.peek()) {
            if negative {
                // nats-server ends a negative integer at any non-digit.
                return self.int(&at, start, digits_end);
            }
            return self.bare(at, start).map(|item| item.value);
        }
        self.int(&at, start, digits_end)
    }

    fn int(&self, at: &Loc, start: usize, digits_end: usize) -> Result<Value, ConfError> {
        let text = &self.text[start..self.at];
        let out_of_range = || {
            ConfError::new(
                at,
                ErrorKind::Syntax(format!("integer '{text}' is out of the range")),
            )
        };
        let n: i64 = self.text[start..digits_end]
            .parse()
            .map_err(|_| out_of_range())?;
        let suffix = self.text[digits_end..self.at].to_ascii_lowercase();
        let (base, power): (i64, u32) = match suffix.as_str() {
            "" => (1, 0),
            "k" | "m" | "g" | "t" | "p" | "e" => (1000, 0),
            "kb" | "ki" | "kib" | "mb" | "mi" | "mib" | "gb" | "gi" | "gib" | "tb" | "ti"
            | "tib" | "pb" | "pi" | "pib" | "eb" | "ei" | "eib" => (1024, 0),
            _ => {
                return Err(ConfError::new(
                    at,
                    ErrorKind::Syntax(format!("integer '{text}' has an unknown size suffix")),
                ))
            }
        };
        let power = match suffix.chars().next() {
            None => power,
            Some(unit) => "kmgtpe".find(unit).map_or(0, |i| i as u32 + 1),
        };
        base.checked_pow(power)
            .and_then(|scale| n.checked_mul(scale))
            .map(Value::Int)
            .ok_or_else(out_of_range)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, with `YYYY` consumed from `start`.
    fn datetime(&mut self, start: usize) -> Result<Value, ConfError> {
        for want in "-00-00T00:00:00Z".chars() {
            let got = self.peek();
            let ok = match want {
                '0' => got.is_some_and(|c| c.is_ascii_digit()),
                _ => got == Some(want),
            };
            if !ok {
                return Err(self.syntax(if want == '0' {
                    format!(
                        "Expected digit in ISO8601 datetime, but found '{}' instead.",
                        shown(got)
                    )
                } else {
                    format!(
                        "Expected '{want}' in ISO8601 datetime, but found '{}' instead.",
                        shown(got)
                    )
                }));
            }
            self.bump();
        }
        Ok(Value::Datetime(self.text[start..self.at].to_string()))
    }

    /// A bare string, boolean or variable from `start` (possibly already partly consumed).
    fn bare(&mut self, at: Loc, start: usize) -> Result<Item, ConfError> {
        let mut escaped: Option<Vec<u8>> = None;
        let mut run = start;
        loop {
            match self.peek() {
                Some('\\') => {
                    let out = escaped.get_or_insert_with(Vec::new);
                    out.extend_from_slice(&self.text.as_bytes()[run..self.at]);
                    self.bump();
                    let mut tail = Vec::new();
                    self.escape(&mut tail)?;
                    escaped.get_or_insert_with(Vec::new).extend(tail);
                    run = self.at;
                }
                Some('\'') | None => break,
                c if Self::is_value_end(c) => break,
                Some(_) => {
                    self.bump();
                }
            }
        }
        let text = &self.text[run..self.at];
        let value = if let Some(mut out) = escaped {
            out.extend_from_slice(text.as_bytes());
            Value::String(String::from_utf8_lossy(&out).into_owned())
        } else {
            let word = &self.text[start..self.at];
            match word.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Value::Bool(true),
                "false" | "no" | "off" => Value::Bool(false),
                _ => match word.strip_prefix('$') {
                    Some(name) => return self.variable(at, name.to_string()),
                    None => Value::String(word.to_string()),
                },
            }
        };
        if self.peek() == Some('\'') {
            // nats-server ends a bare string at a quote and drops the quote.
            self.bump();
        }
        Ok(Item { value, at })
    }

    fn variable(&mut self, at: Loc, name: String) -> Result<Item, ConfError> {
        if ["2a$", "2b$", "2y$"].iter().any(|p| name.starts_with(p)) {
            return Ok(Item {
                value: Value::String(format!("${name}")),
                at,
            });
        }
        for scope in self.scopes.iter_mut().rev() {
            if let Some(entry) = scope.entries.iter_mut().find(|e| e.key == name) {
                entry.used_as_variable = true;
                return Ok(Item {
                    value: entry.value.value.clone(),
                    at,
                });
            }
        }
        let Some(text) = self.shared.source.var(&name) else {
            return Err(ConfError::new(&at, ErrorKind::VariableNotFound(name)));
        };
        if self.shared.env_vars.contains(&name) || self.shared.env_vars.len() >= DEPTH_MAX {
            return Err(ConfError::new(&at, ErrorKind::VariableCycle(name)));
        }
        self.shared.env_vars.push(name.clone());
        const KEY: &str = "pk";
        let conf = format!("{KEY}={text}");
        let parsed = Parser::new(&conf, &format!("${name}"), self.shared).document();
        self.shared.env_vars.pop();
        match parsed {
            Ok(map) => match map.get(KEY) {
                Some(entry) => Ok(Item {
                    value: entry.value.value.clone(),
                    at,
                }),
                None => Err(ConfError::new(&at, ErrorKind::VariableNotFound(name))),
            },
            Err(
                e @ ConfError {
                    kind: ErrorKind::VariableCycle(_),
                    ..
                },
            ) => Err(ConfError { at: Some(at), ..e }),
            Err(e) => Err(ConfError::new(
                &at,
                ErrorKind::VariableUnparsable {
                    name,
                    reason: match e.kind {
                        ErrorKind::Syntax(msg) => msg,
                        _ => e.to_string(),
                    },
                },
            )),
        }
    }

    /// `include <path>` after the keyword; merges the file's entries here.
    fn include(&mut self, at: &Loc) -> Result<(), ConfError> {
        self.skip_blanks();
        let name = match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let start = self.at;
                loop {
                    match self.bump() {
                        Some(c) if c == q => break,
                        Some(_) => {}
                        None if q == '"' => {
                            return Err(self.syntax("Unexpected EOF in double quoted include"))
                        }
                        None => return Err(self.syntax("Unexpected EOF in quoted include")),
                    }
                }
                self.text[start..self.at - 1].to_string()
            }
            c => {
                let found = match c {
                    Some('[') => Some("start of an array"),
                    Some('{') => Some("start of a map"),
                    Some('(') => Some("start of a block"),
                    Some('-') => Some("start of a number"),
                    Some(c) if c.is_ascii_digit() => Some("start of a number"),
                    Some('\\') => Some("escape sequence"),
                    Some(c) if is_nl(c) => Some("new line"),
                    None => Some("EOF"),
                    Some(_) => None,
                };
                if let Some(found) = found {
                    return Err(self.syntax(format!("Expected include value but found {found}")));
                }
                let start = self.at;
                while let Some(c) = self.peek() {
                    if is_nl(c) || is_blank(c) || matches!(c, ';' | '}' | '\'') {
                        break;
                    }
                    self.bump();
                }
                let name = self.text[start..self.at].to_string();
                if self.peek() == Some('\'') {
                    self.bump();
                }
                name
            }
        };
        // Go's filepath.Join cleans `./`; so do we, for readable positions.
        let dir = Path::new(&*self.file).parent().unwrap_or(Path::new(""));
        let path: PathBuf = dir
            .join(&name)
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        let include_err = |reason: String| {
            ConfError::new(
                at,
                ErrorKind::Include {
                    name: name.clone(),
                    reason,
                },
            )
        };
        if self.shared.includes.contains(&path) || self.shared.includes.len() >= DEPTH_MAX {
            return Err(ConfError::new(
                at,
                ErrorKind::IncludeCycle(path.display().to_string()),
            ));
        }
        let text = self
            .shared
            .source
            .read_file(&path)
            .map_err(|reason| include_err(format!("open {}: {reason}", path.display())))?;
        self.shared.includes.push(path.clone());
        let parsed = Parser::new(&text, &path.display().to_string(), self.shared).document();
        self.shared.includes.pop();
        for entry in parsed?.entries {
            self.scope().insert(entry);
        }
        Ok(())
    }
}

/// Go's `time.ParseDuration`: `[-+]` then one or more `<decimal><unit>`,
/// units `ns us µs μs ms s m h`; `0` alone is allowed. Returns nanoseconds.
/// Errors are Go's text, e.g. `time: unknown unit "x" in duration "1x"`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "" => return Err(format!("time: missing unit in duration {}", go_quote(s))),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut frac_ns: u128 = 0;
        let mut div: u128 = 1;
        for d in frac_part.bytes().take(30) {
            frac_ns = frac_ns * 10 + u128::from(d - b'0');
            div *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_ns * scale / div))
            .and_then(|w| total.checked_add(w))
            .filter(|t| *t <= i64::MAX as u128 + u128::from(negative))
            .ok_or_else(invalid)?;
    }
    let total = total as i128;
    // The range check above keeps this in i64.
    Ok(i64::try_from(if negative { -total } else { total }).unwrap_or(i64::MIN))
}

/// A duration value as nats-server reads `ping_interval`/`write_deadline`:
/// a Go duration string, or (deprecated) an integer number of seconds.
pub fn duration_of(value: &Value) -> Option<Result<Duration, String>> {
    match value {
        Value::String(s) => Some(parse_duration(s).and_then(|ns| {
            u64::try_from(ns)
                .map(Duration::from_nanos)
                .map_err(|_| format!("negative duration {}", go_quote(s)))
        })),
        Value::Int(secs) => Some(
            u64::try_from(*secs)
                .map(Duration::from_secs)
                .map_err(|_| format!("negative duration {secs}")),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files from disk, environment from a fixed table: hermetic env tests.
    struct TestSource {
        vars: HashMap<String, String>,
    }

    impl TestSource {
        fn new() -> Self {
            let vars = [
                ("NATSD_TEST_INT", "4444"),
                ("NATSD_TEST_SIZE", "10k"),
                ("NATSD_TEST_STR", "hello"),
                ("NATSD_TEST_SPACES", "hello world"),
                ("NATSD_TEST_MAP", "{ a: 1, b: [x] }"),
                ("NATSD_TEST_CHAIN", "$NATSD_TEST_INT"),
                ("NATSD_TEST_CYCLE_A", "$NATSD_TEST_CYCLE_B"),
                ("NATSD_TEST_CYCLE_B", "$NATSD_TEST_CYCLE_A"),
            ];
            TestSource {
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        }
    }

    impl Source for TestSource {
        fn read_file(&mut self, path: &Path) -> Result<String, String> {
            OsSource.read_file(path)
        }

        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
    }

    fn dump_value(out: &mut String, value: &Value, indent: usize) {
        let pad = "  ".repeat(indent);
        match value {
            Value::String(s) => out.push_str(&format!("string {s:?}")),
            Value::Int(n) => out.push_str(&format!("int {n}")),
            Value::Float(f) => out.push_str(&format!("float {f:?}")),
            Value::Bool(b) => out.push_str(&format!("bool {b}")),
            Value::Datetime(d) => out.push_str(&format!("datetime {d}")),
            Value::Array(items) => {
                out.push_str("[\n");
                for item in items {
                    out.push_str(&format!("{pad}  @{}:{} ", item.at.line, item.at.col));
                    dump_value(out, &item.value, indent + 1);
                    out.push('\n');
                }
                out.push_str(&format!("{pad}]"));
            }
            Value::Map(map) => {
                out.push_str("{\n");
                dump_entries(out, map, indent + 1);
                out.push_str(&format!("{pad}}}"));
            }
        }
    }

    fn dump_entries(out: &mut String, map: &Map, indent: usize) {
        let pad = "  ".repeat(indent);
        for e in map.entries() {
            let used = if e.used_as_variable { " (used)" } else { "" };
            out.push_str(&format!(
                "{pad}{:?} @{}{used} = ",
                e.key,
                e.key_at.to_string().rsplit('/').next().unwrap_or_default()
            ));
            dump_value(out, &e.value.value, indent);
            out.push('\n');
        }
    }

    fn dump(map: &Map) -> String {
        let mut out = String::new();
        dump_entries(&mut out, map, 0);
        out
    }

    /// Data-driven corpus (raft-rs `datadriven` style): each
    /// `testdata/conf/NAME.conf` has `NAME.expect` (the parsed tree) or
    /// `NAME.err` (the error). `NATSD_BLESS=1` rewrites them.
    #[test]
    fn corpus() {
        let bless = std::env::var_os("NATSD_BLESS").is_some();
        let dir = Path::new("testdata/conf");
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("testdata/conf")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        names.sort();
        assert!(names.len() >= 20, "corpus has {} files", names.len());
        let mut failures = Vec::new();
        for path in &names {
            let text = std::fs::read_to_string(path).expect("read corpus file");
            let file = path.display().to_string();
            let (got, ext) = match parse_with(&text, &file, &mut TestSource::new()) {
                Ok(map) => (dump(&map), "expect"),
                Err(e) => (format!("{e}\n"), "err"),
            };
            let want_path = path.with_extension(ext);
            if bless {
                std::fs::write(&want_path, &got).expect("write expectation");
                continue;
            }
            match std::fs::read_to_string(&want_path) {
                Ok(want) if want == got => {}
                Ok(want) => failures.push(format!("{file}:\n--- want\n{want}--- got\n{got}")),
                Err(_) => failures.push(format!("{file}: no {ext} file; got\n{got}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn go_durations() {
        let ms = |s: &str| parse_duration(s).map(|ns| ns / 1_000_000);
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1.5s"), Ok(1_500));
        assert_eq!(ms("-2m"), Ok(-120_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("3us"), Ok(3_000));
        assert_eq!(parse_duration("3µs"), Ok(3_000));
        assert_eq!(
            parse_duration("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            parse_duration("1x"),
            Err("time: unknown unit \"x\" in duration \"1x\"".into())
        );
        assert_eq!(
            parse_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn integer_before_array_end_is_read() {
        // nats-server 2.9.10 fails on `[1, 2]`; we read it.
        let map = parse("a = [1, 2]").expect("valid");
        let Value::Array(items) = &map.entries()[0].value.value else {
            panic!("not an array")
        };
        assert_eq!(items[1].value, Value::Int(2));
    }

    #[test]
    fn parse_has_no_io() {
        let e = parse("include other.conf").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Include { .. }), "{e}");
        let e = parse("a = $HOME").unwrap_err();
        assert_eq!(
            e.to_string(),
            ":1:5: variable reference for 'HOME' can not be found"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("a = {}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested too deep"));
    }

    #[test]
    fn env_values_from_a_mem_source() {
        let mut source = MemSource::default();
        source.vars.insert("P".into(), "2k".into());
        source
            .files
            .insert(PathBuf::from("/etc/inc.conf"), "q = $P".into());
        let map = parse_with("include inc.conf", "/etc/main.conf", &mut source).expect("valid");
        assert_eq!(
            map.get("q").map(|e| &e.value.value),
            Some(&Value::Int(2000))
        );
        assert_eq!(map.get("q").map(|e| &*e.key_at.file), Some("/etc/inc.conf"));
    }
}
