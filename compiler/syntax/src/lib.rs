//! YAML manifests → typed API objects. Owns the spanned YAML loader (`yaml`), the typed model of
//! every kind aigw reads (`model`), the structural check against each kind's schema (`schema`),
//! and field-path → span lookup (`path`). It knows nothing of references between objects: that
//! is the graph's job (`aigw-lower`).

mod diagnostics;
pub mod load;
pub mod model;
#[cfg(test)]
mod oracle;
pub mod path;
mod scalar;
pub mod schema;
mod tree;
pub mod values;
pub mod yaml;

pub use diagnostics::closest;
pub use load::{Loaded, assemble, load, load_each};
pub use model::{Kind, Object, Origin, Spec};
