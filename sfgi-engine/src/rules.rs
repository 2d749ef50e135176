//! Classification rules as data: the TOML schema, its loader and validator, and the matcher.
//!
//! A rules file is a list of `[[rule]]` tables (schema in `docs/RULES.md`). Rules files are
//! untrusted input: loading never panics, every regex is compiled once with a size limit, and every
//! problem is reported as `file:rule-id: what is wrong`.
use crate::features::GroupFeatures;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// The built-in rules, embedded in the binary.
pub const BUILTIN_RULES: &str = include_str!("../rules/builtin.toml");
/// Source name the built-in rules report in errors and in [`Rule::source`].
pub const BUILTIN_SOURCE: &str = "<builtin>/builtin.toml";

/// Compiled-program size limit for one rule regex (bounds memory on hostile rules files).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Nesting limit for one rule regex.
const REGEX_NEST_LIMIT: u32 = 64;
/// `periodic = true` means: the wake intervals' coefficient of variation is below this…
pub const PERIODIC_MAX_CV: f64 = 0.5;
/// …and members woke at least this often on average.
pub const PERIODIC_MIN_WAKES: f64 = 2.0;

/// Why a rules file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("{source_name}: cannot read rules file: {error}")]
    Read {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    /// The file is TOML but not shaped like a rules file (unknown top-level key, `rule` not an
    /// array of tables).
    #[error("{source_name}: {message}")]
    Layout {
        source_name: String,
        message: String,
    },
    /// One rule is wrong.
    #[error("{source_name}:{rule}: {problem}")]
    Rule {
        source_name: String,
        /// The rule's `id`, or `rule #N` (1-based) when it has none.
        rule: String,
        #[source]
        problem: RuleProblem,
    },
}

/// What is wrong with one rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleProblem {
    /// Missing field, unknown field, wrong type (serde's message).
    #[error("{0}")]
    Schema(String),
    /// A field holds a regex that does not compile (or is too large).
    #[error("bad regex in `{field}`: {message}")]
    BadRegex {
        field: &'static str,
        message: String,
    },
    /// A field that must not be empty is.
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
    /// A field's value is out of range or malformed.
    #[error("`{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// An explanation or fix hint uses a placeholder that does not exist.
    #[error("unknown placeholder `{{{name}}}` in `{field}` (known: {known})")]
    UnknownPlaceholder {
        field: &'static str,
        name: String,
        known: &'static str,
    },
    /// The rule has no match condition, so it would match every group.
    #[error("no match condition (a rule needs at least one of wait_reason, frames_any, frames_all, frames_none, created_by, creation_frames_any, periodic, min_wakes_per_member, max_wakes_per_member, nil_object, shared_object, timer_case, stopped_timer, signal_channel, connection_bound, user_frame_below)")]
    NoConditions,
    /// Two rules share an id.
    #[error("duplicate rule id (already defined in {first})")]
    DuplicateId { first: String },
}

/// One rule as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    pattern: String,
    explanation: String,
    fix_hint: String,
    #[serde(default)]
    healthy: bool,
    #[serde(default)]
    priority: Option<i64>,
    /// Free text for people reading the file; ignored by the matcher.
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    wait_reason: Vec<String>,
    #[serde(default)]
    frames_any: Vec<String>,
    #[serde(default)]
    frames_all: Vec<String>,
    #[serde(default)]
    frames_none: Vec<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    creation_frames_any: Vec<String>,
    #[serde(default)]
    periodic: Option<bool>,
    #[serde(default)]
    min_wakes_per_member: Option<f64>,
    #[serde(default)]
    max_wakes_per_member: Option<f64>,
    #[serde(default)]
    nil_object: Option<bool>,
    #[serde(default)]
    shared_object: Option<bool>,
    #[serde(default)]
    timer_case: Option<bool>,
    #[serde(default)]
    stopped_timer: Option<bool>,
    #[serde(default)]
    signal_channel: Option<bool>,
    #[serde(default)]
    connection_bound: Option<bool>,
    #[serde(default)]
    user_frame_below: Option<String>,
}

/// How a `wait_reason` entry matches: exact text, or (with a `re:` prefix) a regex.
#[derive(Clone, Debug)]
enum ReasonMatcher {
    Exact(String),
    Regex(Regex),
}

impl ReasonMatcher {
    fn matches(&self, reason: &str) -> bool {
        match self {
            ReasonMatcher::Exact(s) => s == reason,
            ReasonMatcher::Regex(r) => r.is_match(reason),
        }
    }
}

/// The compiled match conditions of a rule (all present ones must hold).
#[derive(Clone, Debug, Default)]
struct Conditions {
    wait_reason: Vec<ReasonMatcher>,
    frames_any: Vec<Regex>,
    frames_all: Vec<Regex>,
    frames_none: Vec<Regex>,
    created_by: Option<Regex>,
    creation_frames_any: Vec<Regex>,
    periodic: Option<bool>,
    min_wakes_per_member: Option<f64>,
    max_wakes_per_member: Option<f64>,
    nil_object: Option<bool>,
    shared_object: Option<bool>,
    timer_case: Option<bool>,
    stopped_timer: Option<bool>,
    signal_channel: Option<bool>,
    connection_bound: Option<bool>,
    user_frame_below: Option<Regex>,
}

/// A value an explanation or fix hint can interpolate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Count,
    Goroutines,
    WaitReason,
    CreatedBy,
    Site,
    Objects,
    Wakes,
    Interval,
    Cases,
}

const KNOWN_PLACEHOLDERS: &str =
    "{count}, {goroutines}, {wait_reason}, {created_by}, {site}, {objects}, {wakes}, {interval}, {cases}";

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "count" => Var::Count,
            "goroutines" => Var::Goroutines,
            "wait_reason" => Var::WaitReason,
            "created_by" => Var::CreatedBy,
            "site" => Var::Site,
            "objects" => Var::Objects,
            "wakes" => Var::Wakes,
            "interval" => Var::Interval,
            "cases" => Var::Cases,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// An explanation or fix hint with `{name}` placeholders, parsed once (`{{` and `}}` are literal
/// braces).
#[derive(Clone, Debug)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    fn parse(text: &str, field: &'static str) -> Result<Template, RuleProblem> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(RuleProblem::Invalid {
                            field,
                            message: "unclosed `{` (write `{{` for a literal brace)".into(),
                        });
                    }
                    let var = Var::parse(&name).ok_or(RuleProblem::UnknownPlaceholder {
                        field,
                        name,
                        known: KNOWN_PLACEHOLDERS,
                    })?;
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Var(var));
                }
                '}' => {
                    return Err(RuleProblem::Invalid {
                        field,
                        message: "unmatched `}` (write `}}` for a literal brace)".into(),
                    })
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template { pieces })
    }

    /// The text with placeholders filled in from `f`.
    pub fn render(&self, f: &GroupFeatures) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v) => match v {
                    Var::Count => {
                        let _ = write!(out, "{}", f.count);
                    }
                    Var::Goroutines => {
                        let noun = if f.count == 1 {
                            "goroutine"
                        } else {
                            "goroutines"
                        };
                        let _ = write!(out, "{} {noun}", f.count);
                    }
                    Var::WaitReason => out.push_str(or_unknown(&f.wait_reason)),
                    Var::CreatedBy => out.push_str(or_unknown(&f.created_by)),
                    Var::Site => out.push_str(blocking_site(&f.park_frames).unwrap_or("?")),
                    Var::Objects => {
                        if f.distinct_objects == 0 {
                            out.push('?');
                        } else {
                            let _ = write!(out, "{}", f.distinct_objects);
                        }
                    }
                    Var::Wakes => {
                        let _ = write!(out, "{:.1}", f.wakes_per_member);
                    }
                    Var::Interval => match f.wake_interval_median_s {
                        Some(s) if s.is_finite() && s >= 0.0 => {
                            out.push_str(&humantime::format_duration(round_duration(s)).to_string())
                        }
                        _ => out.push('?'),
                    },
                    Var::Cases => out.push_str(&f.cases()),
                },
            }
        }
        out
    }
}

/// A duration of `s` seconds rounded to milliseconds (so `humantime` prints `100ms`, not
/// `100ms 12us 7ns`).
fn round_duration(s: f64) -> std::time::Duration {
    let ms = (s * 1000.0).round().min(u64::MAX as f64 / 2.0);
    std::time::Duration::from_millis(ms as u64)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "?"
    } else {
        s
    }
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Rule name (unique per file).
    pub id: String,
    /// Pattern ID it reports.
    pub pattern: String,
    /// Whether the pattern describes a healthy resident rather than a leak.
    pub healthy: bool,
    /// Explicit priority (higher first); 0 when not given.
    pub priority: i64,
    /// The rules file it came from.
    pub source: String,
    /// The rule's `note`, if any.
    pub note: Option<String>,
    explanation: Template,
    fix_hint: Template,
    cond: Conditions,
}

impl Rule {
    /// Whether every condition of the rule holds for `f`.
    pub fn matches(&self, f: &GroupFeatures) -> bool {
        let c = &self.cond;
        if !c.wait_reason.is_empty() && !c.wait_reason.iter().any(|m| m.matches(&f.wait_reason)) {
            return false;
        }
        let any_frame = |re: &Regex, frames: &[String]| frames.iter().any(|fr| re.is_match(fr));
        if !c.frames_any.is_empty() && !c.frames_any.iter().any(|re| any_frame(re, &f.park_frames))
        {
            return false;
        }
        if !c.frames_all.iter().all(|re| any_frame(re, &f.park_frames)) {
            return false;
        }
        if c.frames_none.iter().any(|re| any_frame(re, &f.park_frames)) {
            return false;
        }
        if let Some(re) = &c.created_by {
            if !re.is_match(&f.created_by) {
                return false;
            }
        }
        if !c.creation_frames_any.is_empty()
            && !c
                .creation_frames_any
                .iter()
                .any(|re| any_frame(re, &f.creation_frames))
        {
            return false;
        }
        if let Some(want) = c.periodic {
            if is_periodic(f) != want {
                return false;
            }
        }
        if let Some(min) = c.min_wakes_per_member {
            if f.wakes_per_member.is_nan() || f.wakes_per_member < min {
                return false;
            }
        }
        if let Some(max) = c.max_wakes_per_member {
            if f.wakes_per_member.is_nan() || f.wakes_per_member > max {
                return false;
            }
        }
        if let Some(want) = c.nil_object {
            if f.nil_object != want {
                return false;
            }
        }
        if let Some(want) = c.shared_object {
            if is_shared_object(f) != want {
                return false;
            }
        }
        for (want, have) in [
            (c.timer_case, f.timer_case()),
            (c.stopped_timer, f.stopped_timer()),
            (c.signal_channel, f.signal_channel()),
            (c.connection_bound, f.connection_bound()),
        ] {
            if want.is_some_and(|w| w != have) {
                return false;
            }
        }
        if let Some(re) = &c.user_frame_below {
            if !user_frame_below(&f.park_frames, re) {
                return false;
            }
        }
        true
    }

    /// The explanation, placeholders filled in.
    pub fn explanation(&self, f: &GroupFeatures) -> String {
        self.explanation.render(f)
    }

    /// The fix hint, placeholders filled in.
    pub fn fix_hint(&self, f: &GroupFeatures) -> String {
        self.fix_hint.render(f)
    }
}

/// `periodic`: members wake at regular intervals (coefficient of variation below
/// [`PERIODIC_MAX_CV`]) and woke at least [`PERIODIC_MIN_WAKES`] times each on average.
pub fn is_periodic(f: &GroupFeatures) -> bool {
    matches!(f.wake_interval_cv, Some(cv) if cv < PERIODIC_MAX_CV)
        && f.wakes_per_member >= PERIODIC_MIN_WAKES
}

/// `shared_object`: all members (two or more) park on one object (a pool on one channel, one
/// mutex).
pub fn is_shared_object(f: &GroupFeatures) -> bool {
    f.distinct_objects == 1 && f.count >= 2
}

/// `user_frame_below`: some non-standard-library frame lies between the innermost frame and the
/// first frame matching `re` (e.g. a handler between `gopark` and `net/http.(*conn).serve`).
fn user_frame_below(frames: &[String], re: &Regex) -> bool {
    match frames.iter().position(|fr| re.is_match(fr)) {
        Some(k) => frames[..k].iter().any(|fr| !is_stdlib_frame(fr)),
        None => false,
    }
}

/// Top-level directories of the Go standard library (`GOROOT/src`).
const STDLIB_ROOTS: &[&str] = &[
    "archive",
    "arena",
    "bufio",
    "builtin",
    "bytes",
    "cmp",
    "cmd",
    "compress",
    "container",
    "context",
    "crypto",
    "database",
    "debug",
    "embed",
    "encoding",
    "errors",
    "expvar",
    "flag",
    "fmt",
    "go",
    "hash",
    "html",
    "image",
    "index",
    "internal",
    "io",
    "iter",
    "log",
    "maps",
    "math",
    "mime",
    "net",
    "os",
    "path",
    "plugin",
    "reflect",
    "regexp",
    "runtime",
    "simd",
    "slices",
    "sort",
    "strconv",
    "strings",
    "structs",
    "sync",
    "syscall",
    "testing",
    "text",
    "time",
    "unicode",
    "unique",
    "unsafe",
    "vendor",
    "weak",
];

/// Whether a Go function name belongs to the standard library (or the compiler-generated `type:`
/// helpers). `main.*`, module paths with a dot (`github.com/…`) and dot-less module paths that are
/// not standard-library roots (`myapp/handlers.*`) are the program's own code.
pub fn is_stdlib_frame(function: &str) -> bool {
    if function.starts_with("type:") {
        return true;
    }
    // Generic instantiations carry type arguments (which may contain slashes) in brackets.
    let name = function.split('[').next().unwrap_or(function);
    let root = match name.find('/') {
        Some(slash) => &name[..slash],
        None => name.split('.').next().unwrap_or(name),
    };
    !root.contains('.') && STDLIB_ROOTS.contains(&root)
}

/// The blocking site for `{site}`: the innermost frame of the program's own code, else the
/// innermost frame outside the runtime.
pub fn blocking_site(frames: &[String]) -> Option<&str> {
    frames
        .iter()
        .find(|f| !is_stdlib_frame(f))
        .or_else(|| {
            frames
                .iter()
                .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/"))
        })
        .or(frames.first())
        .map(String::as_str)
}

/// The rules of one file, in file order.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Source name (path) given at load time.
    pub source: String,
    /// Rules in file order.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The built-in rules.
    ///
    /// # Panics
    /// Only if the embedded `rules/builtin.toml` is invalid, which the test suite rules out.
    pub fn builtin() -> RuleSet {
        match RuleSet::from_toml_str(BUILTIN_RULES, BUILTIN_SOURCE) {
            Ok(set) => set,
            Err(e) => panic!("built-in rules are invalid: {e}"),
        }
    }

    /// Reads and validates a rules file.
    pub fn from_file(path: &Path) -> Result<RuleSet, RulesError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| RulesError::Read {
            source_name: source_name.clone(),
            error,
        })?;
        RuleSet::from_toml_str(&text, &source_name)
    }

    /// Parses and validates rules from TOML text; `source_name` names it in errors.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<RuleSet, RulesError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let mut message = e.message().trim().to_string();
            if let Some(span) = e.span() {
                let start = span.start.min(text.len());
                let line = text
                    .get(..start)
                    .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
                    + 1;
                message = format!("line {line}: {message}");
            }
            RulesError::Syntax {
                source_name: source_name.to_string(),
                message,
            }
        })?;
        let layout = |message: String| RulesError::Layout {
            source_name: source_name.to_string(),
            message,
        };
        let mut rules = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (key, value) in table {
            if key != "rule" {
                return Err(layout(format!(
                    "unknown top-level key `{key}` (a rules file holds only [[rule]] tables)"
                )));
            }
            let toml::Value::Array(items) = value else {
                return Err(layout(
                    "`rule` must be an array of tables: write each rule as [[rule]]".into(),
                ));
            };
            for (i, item) in items.into_iter().enumerate() {
                let fallback = format!("rule #{}", i + 1);
                let rule_err = |rule: &str, problem: RuleProblem| RulesError::Rule {
                    source_name: source_name.to_string(),
                    rule: rule.to_string(),
                    problem,
                };
                let toml::Value::Table(t) = item else {
                    return Err(rule_err(
                        &fallback,
                        RuleProblem::Schema("a rule must be a table ([[rule]])".into()),
                    ));
                };
                let label = match t.get("id") {
                    Some(toml::Value::String(id)) if !id.trim().is_empty() => id.clone(),
                    _ => fallback,
                };
                check_types(&t).map_err(|p| rule_err(&label, p))?;
                let spec: RuleSpec =
                    toml::Value::Table(t)
                        .try_into()
                        .map_err(|e: toml::de::Error| {
                            rule_err(&label, RuleProblem::Schema(e.message().trim().to_string()))
                        })?;
                let rule = compile(spec, source_name).map_err(|p| rule_err(&label, p))?;
                if !seen.insert(rule.id.clone()) {
                    return Err(rule_err(
                        &label,
                        RuleProblem::DuplicateId {
                            first: source_name.to_string(),
                        },
                    ));
                }
                rules.push(rule);
            }
        }
        Ok(RuleSet {
            source: source_name.to_string(),
            rules,
        })
    }
}

/// Checks the TOML type of each known field, so a wrong type names its field (serde's own
/// message does not). Unknown fields are left to serde's `deny_unknown_fields`.
fn check_types(t: &toml::Table) -> Result<(), RuleProblem> {
    use toml::Value as V;
    for (key, value) in t {
        let (ok, want) = match key.as_str() {
            "id" | "pattern" | "explanation" | "fix_hint" | "note" | "created_by"
            | "user_frame_below" => (matches!(value, V::String(_)), "a string"),
            "healthy" | "periodic" | "nil_object" | "shared_object" | "timer_case"
            | "stopped_timer" | "signal_channel" | "connection_bound" => {
                (matches!(value, V::Boolean(_)), "true or false")
            }
            "priority" => (matches!(value, V::Integer(_)), "an integer"),
            "min_wakes_per_member" | "max_wakes_per_member" => {
                (matches!(value, V::Integer(_) | V::Float(_)), "a number")
            }
            "wait_reason" | "frames_any" | "frames_all" | "frames_none" | "creation_frames_any" => {
                (
                    matches!(value, V::Array(a) if a.iter().all(|v| matches!(v, V::String(_)))),
                    "an array of strings",
                )
            }
            _ => continue,
        };
        if !ok {
            return Err(RuleProblem::Invalid {
                field: field_name(key),
                message: format!("expected {want}, found {}", value.type_str()),
            });
        }
    }
    Ok(())
}

/// The static name of a known field (for [`RuleProblem`]).
fn field_name(key: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "id",
        "pattern",
        "explanation",
        "fix_hint",
        "healthy",
        "priority",
        "note",
        "wait_reason",
        "frames_any",
        "frames_all",
        "frames_none",
        "created_by",
        "creation_frames_any",
        "periodic",
        "min_wakes_per_member",
        "max_wakes_per_member",
        "nil_object",
        "shared_object",
        "timer_case",
        "stopped_timer",
        "signal_channel",
        "connection_bound",
        "user_frame_below",
    ];
    FIELDS.iter().copied().find(|f| *f == key).unwrap_or("?")
}

/// Ids and pattern IDs: letters, digits, `-`, `_`, `.`.
fn check_name(field: &'static str, value: &str) -> Result<(), RuleProblem> {
    if value.is_empty() {
        return Err(RuleProblem::Empty { field });
    }
    if value.len() > 128
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(RuleProblem::Invalid {
            field,
            message: format!(
                "{value:?} is not a valid name (use letters, digits, `-`, `_`, `.`; at most 128)"
            ),
        });
    }
    Ok(())
}

fn regex(field: &'static str, pattern: &str) -> Result<Regex, RuleProblem> {
    if pattern.is_empty() {
        return Err(RuleProblem::Empty { field });
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| RuleProblem::BadRegex {
            field,
            message: e.to_string().replace('\n', " "),
        })
}

fn regexes(field: &'static str, patterns: &[String]) -> Result<Vec<Regex>, RuleProblem> {
    patterns.iter().map(|p| regex(field, p)).collect()
}

fn wakes(field: &'static str, v: Option<f64>) -> Result<Option<f64>, RuleProblem> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(RuleProblem::Invalid {
            field,
            message: format!("{x} is not a finite number >= 0"),
        }),
        v => Ok(v),
    }
}

fn compile(spec: RuleSpec, source: &str) -> Result<Rule, RuleProblem> {
    check_name("id", &spec.id)?;
    check_name("pattern", &spec.pattern)?;
    if spec.explanation.trim().is_empty() {
        return Err(RuleProblem::Empty {
            field: "explanation",
        });
    }
    if spec.fix_hint.trim().is_empty() {
        return Err(RuleProblem::Empty { field: "fix_hint" });
    }
    let explanation = Template::parse(&spec.explanation, "explanation")?;
    let fix_hint = Template::parse(&spec.fix_hint, "fix_hint")?;
    let wait_reason = spec
        .wait_reason
        .iter()
        .map(|w| match w.strip_prefix("re:") {
            Some(re) => regex("wait_reason", re).map(ReasonMatcher::Regex),
            None if w.is_empty() => Err(RuleProblem::Empty {
                field: "wait_reason",
            }),
            None => Ok(ReasonMatcher::Exact(w.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let min = wakes("min_wakes_per_member", spec.min_wakes_per_member)?;
    let max = wakes("max_wakes_per_member", spec.max_wakes_per_member)?;
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(RuleProblem::Invalid {
                field: "min_wakes_per_member",
                message: format!("{lo} is greater than max_wakes_per_member {hi}"),
            });
        }
    }
    let cond = Conditions {
        wait_reason,
        frames_any: regexes("frames_any", &spec.frames_any)?,
        frames_all: regexes("frames_all", &spec.frames_all)?,
        frames_none: regexes("frames_none", &spec.frames_none)?,
        created_by: spec
            .created_by
            .as_deref()
            .map(|p| regex("created_by", p))
            .transpose()?,
        creation_frames_any: regexes("creation_frames_any", &spec.creation_frames_any)?,
        periodic: spec.periodic,
        min_wakes_per_member: min,
        max_wakes_per_member: max,
        nil_object: spec.nil_object,
        shared_object: spec.shared_object,
        timer_case: spec.timer_case,
        stopped_timer: spec.stopped_timer,
        signal_channel: spec.signal_channel,
        connection_bound: spec.connection_bound,
        user_frame_below: spec
            .user_frame_below
            .as_deref()
            .map(|p| regex("user_frame_below", p))
            .transpose()?,
    };
    let has_condition = !cond.wait_reason.is_empty()
        || !cond.frames_any.is_empty()
        || !cond.frames_all.is_empty()
        || !cond.frames_none.is_empty()
        || cond.created_by.is_some()
        || !cond.creation_frames_any.is_empty()
        || cond.periodic.is_some()
        || cond.min_wakes_per_member.is_some()
        || cond.max_wakes_per_member.is_some()
        || cond.nil_object.is_some()
        || cond.shared_object.is_some()
        || cond.timer_case.is_some()
        || cond.stopped_timer.is_some()
        || cond.signal_channel.is_some()
        || cond.connection_bound.is_some()
        || cond.user_frame_below.is_some();
    if !has_condition {
        return Err(RuleProblem::NoConditions);
    }
    Ok(Rule {
        id: spec.id,
        pattern: spec.pattern,
        healthy: spec.healthy,
        priority: spec.priority.unwrap_or(0),
        source: source.to_string(),
        note: spec.note,
        explanation,
        fix_hint,
        cond,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        RuleSet::from_toml_str(text, "x.toml")
            .unwrap_err()
            .to_string()
    }

    const OK: &str = r#"
[[rule]]
id = "r1"
pattern = "p"
explanation = "{goroutines} wait in {site}"
fix_hint = "fix it"
wait_reason = ["chan send"]
"#;

    #[test]
    fn builtin_rules_load() {
        let set = RuleSet::builtin();
        assert!(set.rules.len() > 20);
    }

    #[test]
    fn minimal_rule_loads_and_renders() {
        let set = RuleSet::from_toml_str(OK, "x.toml").unwrap();
        let f = GroupFeatures {
            wait_reason: "chan send".into(),
            park_frames: vec!["runtime.gopark".into(), "main.leak".into()],
            count: 1,
            ..Default::default()
        };
        assert!(set.rules[0].matches(&f));
        assert_eq!(
            set.rules[0].explanation(&f),
            "1 goroutine wait in main.leak"
        );
    }

    #[test]
    fn unknown_key_names_rule() {
        let e = err(&OK.replace("fix_hint", "frames_anyy = [\"x\"]\nfix_hint"));
        // SFGI's part: the file and the rule; the rest is serde's wording, which only has to
        // name the key.
        assert!(
            e.starts_with("x.toml:r1: ") && e.contains("frames_anyy"),
            "{e}"
        );
    }

    #[test]
    fn bad_regex_names_rule_and_field() {
        let e = err(&format!("{OK}frames_any = ['main.(leak']\n"));
        assert!(e.starts_with("x.toml:r1: bad regex in `frames_any`"), "{e}");
        let e = err(&OK.replace("\"chan send\"", "\"re:(\""));
        assert!(
            e.starts_with("x.toml:r1: bad regex in `wait_reason`"),
            "{e}"
        );
    }

    #[test]
    fn oversized_regex_is_an_error_not_a_hang() {
        let e = err(&format!("{OK}frames_any = ['(a{{1000}}){{1000}}']\n"));
        assert!(e.contains("bad regex in `frames_any`"), "{e}");
    }

    #[test]
    fn missing_field_uses_position() {
        let text = "[[rule]]\npattern = \"p\"\nexplanation = \"e\"\nfix_hint = \"f\"\nwait_reason = [\"x\"]\n";
        // Without an id the rule is named by its position; the message itself is serde's, which
        // only has to name the field.
        match RuleSet::from_toml_str(text, "x.toml") {
            Err(RulesError::Rule {
                source_name,
                rule,
                problem: RuleProblem::Schema(message),
            }) => {
                assert_eq!((source_name.as_str(), rule.as_str()), ("x.toml", "rule #1"));
                assert!(message.contains("id"), "{message}");
            }
            other => panic!("want a schema error of rule #1, got {other:?}"),
        }
    }

    #[test]
    fn wrong_type_is_reported() {
        let e = err(&OK.replace(
            "wait_reason = [\"chan send\"]",
            "wait_reason = \"chan send\"",
        ));
        assert_eq!(
            e,
            "x.toml:r1: `wait_reason`: expected an array of strings, found string"
        );
        let e = err(&format!("{OK}healthy = \"yes\"\n"));
        assert_eq!(
            e,
            "x.toml:r1: `healthy`: expected true or false, found string"
        );
    }

    #[test]
    fn no_conditions_is_an_error() {
        let e = err(&OK.replace("wait_reason = [\"chan send\"]", ""));
        assert!(e.starts_with("x.toml:r1: no match condition"), "{e}");
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let e = err(&OK.replace("{site}", "{where}"));
        assert!(
            e.contains("x.toml:r1: unknown placeholder `{where}`"),
            "{e}"
        );
        let e = err(&OK.replace("{site}", "{site"));
        assert!(e.contains("unclosed"), "{e}");
        let ok = RuleSet::from_toml_str(&OK.replace("{site}", "{{literal}}"), "x").unwrap();
        assert_eq!(
            ok.rules[0].explanation(&GroupFeatures::default()),
            "0 goroutines wait in {literal}"
        );
    }

    #[test]
    fn duplicate_id_is_an_error() {
        let e = err(&format!("{OK}{OK}"));
        assert!(e.starts_with("x.toml:r1: duplicate rule id"), "{e}");
    }

    #[test]
    fn bad_names_and_numbers() {
        assert!(err(&OK.replace("\"r1\"", "\"r 1\"")).contains("not a valid name"));
        assert!(
            err(&OK.replace("\"r1\"", "\"\"")).contains("x.toml:rule #1: `id` must not be empty")
        );
        let e = err(&format!("{OK}min_wakes_per_member = -1\n"));
        assert!(e.contains("x.toml:r1: `min_wakes_per_member`"), "{e}");
        let e = err(&format!(
            "{OK}min_wakes_per_member = 3\nmax_wakes_per_member = 1\n"
        ));
        assert!(e.contains("greater than"), "{e}");
        let e = err(&format!("{OK}priority = 1.5\n"));
        assert_eq!(e, "x.toml:r1: `priority`: expected an integer, found float");
    }

    #[test]
    fn layout_errors() {
        assert!(err("rules = 1").contains("unknown top-level key `rules`"));
        assert!(err("rule = 1").contains("array of tables"));
        assert!(err("rule = [1]").starts_with("x.toml:rule #1: a rule must be a table"));
        assert!(err("[[rule]\n").starts_with("x.toml: not valid TOML: line 1"));
        assert!(RuleSet::from_toml_str("", "x").unwrap().rules.is_empty());
    }

    #[test]
    fn stdlib_frames() {
        for f in [
            "runtime.gopark",
            "net/http.(*conn).serve",
            "internal/poll.(*FD).Read",
            "sync.(*Mutex).Lock",
            "vendor/golang.org/x/net/http2/hpack.(*Decoder).Write",
            "type:.eq.main.T",
            "slices.SortFunc[go.shape.[]int]",
        ] {
            assert!(is_stdlib_frame(f), "{f}");
        }
        for f in [
            "main.slowHandler",
            "main.main.func1",
            "github.com/segmentio/kafka-go.(*Reader).FetchMessage",
            "go.uber.org/zap.(*Logger).Info",
            "myapp/handlers.Serve",
            "gopkg.in/yaml.v3.Unmarshal",
            "main.Map[go.shape.string,net/http.Header]",
        ] {
            assert!(!is_stdlib_frame(f), "{f}");
        }
    }

    #[test]
    fn user_frame_below_needs_the_anchor() {
        let re = Regex::new(r"^net/http\.\(\*conn\)\.serve$").unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(user_frame_below(
            &s(&["runtime.gopark", "main.h", "net/http.(*conn).serve"]),
            &re
        ));
        assert!(!user_frame_below(
            &s(&[
                "runtime.gopark",
                "bufio.(*Reader).Peek",
                "net/http.(*conn).serve"
            ]),
            &re
        ));
        assert!(!user_frame_below(&s(&["runtime.gopark", "main.h"]), &re));
    }

    #[test]
    fn periodic_and_shared() {
        let mut f = GroupFeatures {
            wakes_per_member: 5.0,
            wake_interval_cv: Some(0.1),
            ..Default::default()
        };
        assert!(is_periodic(&f));
        f.wake_interval_cv = Some(0.9);
        assert!(!is_periodic(&f));
        f.wake_interval_cv = None;
        assert!(!is_periodic(&f));
        f.distinct_objects = 1;
        f.count = 2;
        assert!(is_shared_object(&f));
        f.count = 1;
        assert!(!is_shared_object(&f));
    }
}
