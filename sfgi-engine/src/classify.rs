//! Names what kind of leak (or healthy resident) a group is: one pattern ID per group, with a
//! plain explanation and a fix hint. Rules are data (see `rules/`), user-extensible.
pub use crate::features::GroupFeatures;
use crate::rules::{blocking_site, Rule, RuleProblem, RuleSet, RulesError};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The verdict of the classifier for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// Pattern ID (`chan-send-blocked`, …, or `unclassified`).
    pub pattern: String,
    /// One plain sentence: what is going on.
    pub explanation: String,
    /// One plain sentence: how to fix it.
    pub fix_hint: String,
    /// Whether the rule describes a healthy, long-lived goroutine (worker pool, idle keep-alive
    /// connection, ticker, signal waiter) rather than a leak: the judge then calls it
    /// `resident` unless it grows.
    pub healthy: bool,
    /// The rule that matched (its `id` in the rules file).
    pub rule: String,
}

/// Pattern ID reported when no rule matches.
pub const UNCLASSIFIED: &str = "unclassified";

/// The ordered rules: user rules (in the order their files were given) before the built-ins,
/// then stably re-ordered by `priority` (higher first). The first matching rule wins.
#[derive(Clone, Debug)]
pub struct Classifier {
    rules: Vec<Rule>,
}

impl Classifier {
    /// The built-in rules only (`rules/builtin.toml`, embedded in the binary).
    pub fn builtin() -> Classifier {
        Classifier::from_rule_sets(Vec::new(), builtin_rules())
    }

    /// The rules of each file in `paths` (tried in that order), then the built-ins. A user rule
    /// whose `id` equals a built-in rule's replaces that built-in rule; two user rules (in the
    /// same or different files) may not share an id.
    pub fn with_user_rules(paths: &[PathBuf]) -> Result<Classifier, RulesError> {
        let sets = paths
            .iter()
            .map(|p| RuleSet::from_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        Classifier::with_rule_sets(sets)
    }

    /// As [`Classifier::with_user_rules`], from already loaded rule sets.
    pub fn with_rule_sets(user: Vec<RuleSet>) -> Result<Classifier, RulesError> {
        let mut first_source: HashMap<String, String> = HashMap::new();
        for set in &user {
            for rule in &set.rules {
                if let Some(first) = first_source.get(&rule.id) {
                    return Err(RulesError::Rule {
                        source_name: set.source.clone(),
                        rule: rule.id.clone(),
                        problem: RuleProblem::DuplicateId {
                            first: first.clone(),
                        },
                    });
                }
                first_source.insert(rule.id.clone(), set.source.clone());
            }
        }
        Ok(Classifier::from_rule_sets(user, builtin_rules()))
    }

    fn from_rule_sets(user: Vec<RuleSet>, builtin: RuleSet) -> Classifier {
        let overridden: HashSet<String> = user
            .iter()
            .flat_map(|s| s.rules.iter().map(|r| r.id.clone()))
            .collect();
        let mut rules: Vec<Rule> = user.into_iter().flat_map(|s| s.rules).collect();
        rules.extend(
            builtin
                .rules
                .into_iter()
                .filter(|r| !overridden.contains(&r.id)),
        );
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        Classifier { rules }
    }

    /// The rules in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule matching `f`, if any.
    pub fn matching_rule(&self, f: &GroupFeatures) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(f))
    }

    /// The group's pattern, explanation and fix hint; `unclassified` (with `rule` empty) when no
    /// rule matches.
    pub fn classify(&self, f: &GroupFeatures) -> Classification {
        match self.matching_rule(f) {
            Some(rule) => Classification {
                pattern: rule.pattern.clone(),
                explanation: rule.explanation(f),
                fix_hint: rule.fix_hint(f),
                healthy: rule.healthy,
                rule: rule.id.clone(),
            },
            None => Classification {
                pattern: UNCLASSIFIED.to_string(),
                explanation: format!(
                    "{} parked in `{}` at {}; no rule recognises this shape.",
                    plural(f.count),
                    if f.wait_reason.is_empty() {
                        "?"
                    } else {
                        &f.wait_reason
                    },
                    blocking_site(&f.park_frames).unwrap_or("?"),
                ),
                fix_hint: "Read the stack: find what this goroutine waits for and make sure it \
                           happens or is cancelled (a rules file can name the shape: --rules)."
                    .to_string(),
                healthy: false,
                rule: String::new(),
            },
        }
    }
}

/// The built-in rules, compiled once per process (compiled regexes are cheap to clone).
fn builtin_rules() -> RuleSet {
    static BUILTIN: OnceLock<RuleSet> = OnceLock::new();
    BUILTIN.get_or_init(RuleSet::builtin).clone()
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 goroutine".to_string()
    } else {
        format!("{n} goroutines")
    }
}
