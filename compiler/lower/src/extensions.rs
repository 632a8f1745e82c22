//! Whole-graph checks of EnvoyExtensionPolicy: the parts aigw's data plane does not run.
//! Its `wasm` modules run in aigw as Envoy runs them, read from a path (a module fetched from
//! a URL or an image, verified with a TLS setting or given host variables is refused by name:
//! a request must never go on without an extension that was asked for). `extProc`, `lua` and
//! `dynamicModule` are Envoy's: a warning says requests served by aigw go without them.

use crate::diagnostics;
use aigw_diag::Diagnostic;
use aigw_ir::Ir;
use aigw_syntax::model::WasmCodeType;
use aigw_syntax::{Kind, Spec};

pub(crate) fn check(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, policy) in ir.objects(Kind::EnvoyExtensionPolicy) {
        let Some(Spec::EnvoyExtensionPolicy(spec)) = &policy.spec else {
            continue;
        };
        let mut refused: Vec<(String, &str, &str)> = Vec::new();
        if spec.target_selectors.is_some() {
            refused.push((
                "spec.targetSelectors".into(),
                "`targetSelectors` yet",
                "name the targets in `targetRefs`",
            ));
        }
        if spec.merge_type.is_some() {
            refused.push((
                "spec.mergeType".into(),
                "`mergeType` yet",
                "give the route the whole list of extensions it runs",
            ));
        }
        for (i, wasm) in spec.wasm.iter().enumerate() {
            let at = format!("spec.wasm[{i}]");
            if wasm.code.code_type == WasmCodeType::Image {
                refused.push((
                    format!("{at}.code.type"),
                    "WASM modules from images yet",
                    "give the module's path in `code.http.url` (type HTTP)",
                ));
            }
            if let Some(http) = &wasm.code.http {
                if http.url.contains("://") {
                    refused.push((
                        format!("{at}.code.http.url"),
                        "WASM modules fetched from a URL yet",
                        "download the module (check its sha256) and give its absolute path in `url`",
                    ));
                } else if !http.url.starts_with('/') {
                    refused.push((
                        format!("{at}.code.http.url"),
                        "a WASM module path that is not absolute",
                        "give the module's absolute path, as the data plane reads it",
                    ));
                }
                if http.tls.is_some() {
                    refused.push((
                        format!("{at}.code.http.tls"),
                        "`tls` for a module read from a path",
                        "remove it",
                    ));
                }
            }
            if wasm.env.is_some() {
                refused.push((
                    format!("{at}.env"),
                    "host environment variables for WASM modules yet",
                    "put what the module needs in its `config`",
                ));
            }
        }
        for (field, what, help) in refused {
            let span = policy.origin.span_of(&field);
            out.push(
                diagnostics::unsupported_policy(span, &field, what, help)
                    .with_resource(policy.resource()),
            );
        }
        for (section, set) in [
            ("extProc", spec.ext_proc.is_some()),
            ("lua", spec.lua.is_some()),
            ("dynamicModule", spec.dynamic_module.is_some()),
        ] {
            if set {
                let field = format!("spec.{section}");
                let span = policy.origin.key_span_of(&field);
                out.push(
                    diagnostics::policy_section_ignored(
                        span,
                        &field,
                        "EnvoyExtensionPolicy",
                        "`wasm`",
                    )
                    .with_resource(policy.resource()),
                );
            }
        }
    }
}
