//! The compiler driver behind the `aigw` binary: reading inputs (files, directories, stdin),
//! running the passes in order (load → admit → graph), and collecting diagnostics. The binary
//! (`main.rs`) adds argument parsing, rendering and exit codes; tests and xtask call this
//! library directly.

pub mod compile;
pub mod conformance;
pub mod controller;
pub mod front;
pub mod inputs;
pub mod run;
pub mod testdata;

use aigw_diag::{Diagnostic, Diagnostics, Severity, SourceMap};
pub use aigw_lower::Options as GraphOptions;

/// What to check and how.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Unresolved references become warnings (for repos that hold only part of the world).
    pub open: bool,
    /// Check each object alone, like an API server's admission (no graph checks).
    pub admission_only: bool,
}

/// The result of checking a set of sources.
#[derive(Debug)]
pub struct Checked {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    /// The checked graph, when the input had no errors before the graph was built.
    pub ir: Option<aigw_ir::Ir>,
}

impl Checked {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity() == Severity::Error)
    }

    /// Makes "no objects in the input" an error: for `aigw compile` and `aigw run`, where an
    /// empty input would write empty artifacts over good ones or serve nothing.
    pub fn require_objects(&mut self) {
        for d in &mut self.diagnostics {
            if d.code() == aigw_diag::codes::NO_OBJECTS {
                *d = d.clone().with_severity(Severity::Error);
            }
        }
    }

    /// Number of diagnostics of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == severity)
            .count()
    }
}

/// Runs every pass over `sources` and returns all diagnostics, sorted so that the output does not
/// depend on the order of files or documents.
pub fn check(sources: SourceMap, options: CheckOptions) -> Checked {
    let mut loaded = aigw_syntax::load(&sources);
    admit(&mut loaded);
    check_loaded(sources, loaded, options)
}

/// The admission pass over objects already read: each object alone, its diagnostics added to
/// what reading it found. Per object, so a caller that reads files one by one (the controller)
/// keeps the result with the file.
pub fn admit(loaded: &mut aigw_syntax::Loaded) {
    for object in &loaded.objects {
        loaded.diagnostics.extend(aigw_admit::admit(object));
    }
}

/// [`check`] after reading and admission: the graph and its checks, then the diagnostics
/// sorted.
pub fn check_loaded(
    sources: SourceMap,
    loaded: aigw_syntax::Loaded,
    options: CheckOptions,
) -> Checked {
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(loaded.diagnostics);
    let ir = if options.admission_only {
        None
    } else {
        let lowered = aigw_lower::lower(loaded.objects, GraphOptions { open: options.open });
        diagnostics.extend(lowered.diagnostics);
        Some(lowered.ir)
    };
    diagnostics.sort(&sources);
    Checked {
        sources,
        diagnostics: diagnostics.into_vec(),
        ir,
    }
}
