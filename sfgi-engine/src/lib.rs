//! SFGI's judgement, pure: what the sources saw (runtime events, goroutine records) in, leak
//! verdicts out. No tracing, async runtime, HTTP or system call here, and no clock: every
//! function that needs "now" takes it as a parameter, so the engine is deterministic under test.
//!
//! Data flow, one module per step:
//! `event` / `goroutine` (what a source saw) → `lifetime` (one state machine per goroutine)
//! → `group` + `frame` (goroutines by wait reason, blocking site, creation site)
//! → `classify` + `rules` (which pattern) → `judge` (status and severity)
//! → `engine` (all of it for one target: [`engine::Engine`], [`engine::Leak`]). `proof` is the
//! outcome of a source's reachability pass (members proven leaked), another input.
pub mod classify;
pub mod engine;
pub mod event;
pub mod features;
pub mod format;
pub mod frame;
pub mod goroutine;
pub mod group;
pub mod judge;
pub mod lifetime;
pub mod proof;
pub mod rules;
