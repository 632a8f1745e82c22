//! Objects → the checked graph. `resolve` adds every object and its parts as nodes and every
//! reference as an edge, reporting references that do not resolve or cross namespaces without
//! permission; `checks` then looks at the whole graph: conflicting policies, credentials,
//! endpoint × schema compatibility, shadowed models and Secret keys.
//!
//! Closed world: the input is taken to be everything, unless `Options::open` says references may
//! point elsewhere. An object that failed to load still has a node, so references to it resolve
//! and its mistakes are reported once, not again at every dependent.

pub mod callers;
mod checks;
mod diagnostics;
pub mod endpoints;
mod extensions;
mod filters;
mod mcp;
mod resolve;

use aigw_diag::Diagnostic;
use aigw_ir::Ir;
use aigw_syntax::Object;

/// Options of the graph passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Unresolved references (and missing credentials) are warnings: the objects may be defined
    /// in another repository.
    pub open: bool,
}

/// The graph and what building and checking it found.
#[derive(Debug)]
pub struct Lowered {
    pub ir: Ir,
    pub diagnostics: Vec<Diagnostic>,
}

/// Builds and checks the graph of `objects` (sorted by identity, as `aigw_syntax::load` returns
/// them). The graph takes ownership: objects are shared by `Arc`, never copied.
pub fn lower(objects: Vec<Object>, options: Options) -> Lowered {
    let (ir, mut diagnostics) = resolve::resolve(objects, options);
    diagnostics.extend(checks::check(&ir));
    callers::check(&ir, &mut diagnostics);
    extensions::check(&ir, &mut diagnostics);
    filters::check(&ir, &mut diagnostics);
    mcp::check(&ir, &mut diagnostics);
    Lowered { ir, diagnostics }
}
