//! The rules-file reader (`RuleSet::from_toml_str`): TOML syntax, schema, regexes, templates.
//! A file that loads is also put in a classifier and run against a few group shapes, so the
//! compiled conditions and the placeholder templates are exercised too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi_engine::classify::{Classifier, GroupFeatures};
use sfgi_engine::goroutine::ChanKind;
use sfgi_engine::rules::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = RuleSet::from_toml_str(text, "fuzz.toml") else {
        return;
    };
    let Ok(classifier) = Classifier::with_rule_sets(vec![set]) else {
        return;
    };
    let shapes = [
        GroupFeatures::default(),
        GroupFeatures {
            wait_reason: "chan send".into(),
            park_frames: vec![
                "runtime.gopark".into(),
                "runtime.chansend".into(),
                "main.worker".into(),
            ],
            created_by: "main.main".into(),
            creation_frames: vec!["main.main".into()],
            count: 1,
            distinct_objects: 1,
            nil_object: false,
            creators: 1,
            wakes_per_member: f64::NAN,
            wake_interval_cv: Some(f64::INFINITY),
            wake_interval_median_s: Some(f64::MAX),
            waits_on: vec![ChanKind::Data, ChanKind::Timer, ChanKind::TimerStopped],
            connection_members: 1,
        },
        GroupFeatures {
            wait_reason: "select".into(),
            park_frames: vec!["runtime.gopark".into(), "net/http.(*conn).serve".into()],
            count: 40,
            distinct_objects: 40,
            nil_object: true,
            creators: 3,
            wakes_per_member: 12.5,
            wake_interval_cv: Some(0.01),
            wake_interval_median_s: Some(-1.0),
            ..GroupFeatures::default()
        },
    ];
    for f in &shapes {
        let c = classifier.classify(f);
        let _ = (c.pattern.len(), c.explanation.len(), c.fix_hint.len());
    }
});
