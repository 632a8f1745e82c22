//! Status conditions: what the reference controller would write on each of our objects. One
//! condition per object, as the reference writes it: `Accepted` (status `True`, reason
//! `ReconciliationSucceeded`, the kind's success message) or `NotAccepted` (status `False`,
//! reason `ReconciliationFailed`, the errors found for that object). GatewayConfig uses the
//! condition type as its reason, as the reference does.
//!
//! `lastTransitionTime` is left out: artifacts must be byte-identical from run to run, and the
//! time an object is accepted is the controller's to record.

use aigw_diag::{Diagnostic, Severity};
use aigw_ir::Ir;
use aigw_syntax::Kind;
use serde_json::{Value, json};

/// The kinds that carry status in the reference, with their success messages.
pub const STATUS_KINDS: &[(Kind, &str)] = &[
    (
        Kind::AIGatewayRoute,
        "AI Gateway Route reconciled successfully",
    ),
    (
        Kind::AIServiceBackend,
        "AIServiceBackend reconciled successfully",
    ),
    (
        Kind::BackendSecurityPolicy,
        "BackendSecurityPolicy reconciled successfully",
    ),
    (Kind::GatewayConfig, "GatewayConfig reconciled successfully"),
    (Kind::MCPRoute, "MCP Gateway Route reconciled successfully"),
    (Kind::QuotaPolicy, "QuotaPolicy reconciled successfully"),
    // aigw's own kind. (A SecurityPolicy's status is Envoy Gateway's PolicyStatus, by
    // ancestor: the controller's to write, not this list's.)
    (Kind::ModelAccessPolicy, "ModelAccessPolicy accepted"),
    (Kind::PromptGuardPolicy, "PromptGuardPolicy accepted"),
    (Kind::ResponseCachePolicy, "ResponseCachePolicy accepted"),
];

/// One document per object of a [`STATUS_KINDS`] kind, in that order, then by namespace and name.
/// Errors in `diagnostics` that name an object make it `NotAccepted`.
pub fn status<'a>(ir: &'a Ir, diagnostics: &'a [Diagnostic]) -> impl Iterator<Item = Value> + 'a {
    STATUS_KINDS.iter().flat_map(move |(kind, success)| {
        ir.objects(*kind).map(move |(_, object)| {
            let errors: Vec<&str> = diagnostics
                .iter()
                .filter(|d| d.severity() == Severity::Error)
                .filter(|d| {
                    d.resource().is_some_and(|r| {
                        r.kind == object.kind_name
                            && r.namespace == object.namespace
                            && r.name == object.name
                    })
                })
                .map(Diagnostic::message)
                .collect();
            let (kind_name, accepted) = (object.kind_name, errors.is_empty());
            let (condition, status, reason, message) = if accepted {
                (
                    "Accepted",
                    "True",
                    "ReconciliationSucceeded",
                    (*success).to_owned(),
                )
            } else {
                (
                    "NotAccepted",
                    "False",
                    "ReconciliationFailed",
                    errors.join("; "),
                )
            };
            let reason = if *kind == Kind::GatewayConfig {
                condition
            } else {
                reason
            };
            json!({
                "apiVersion": object.api_version,
                "kind": kind_name,
                "metadata": {"name": object.name, "namespace": object.namespace},
                "status": {"conditions": [{
                    "type": condition,
                    "status": status,
                    "reason": reason,
                    "message": message,
                }]},
            })
        })
    })
}
