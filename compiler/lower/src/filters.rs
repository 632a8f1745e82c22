//! HTTPRoute filters aigw does not apply (extension references, CORS, external auth, and
//! filters on a single backend) are refused by name: a request aigw cannot filter as
//! written is refused at compile time rather than sent unfiltered.

use crate::diagnostics;
use aigw_diag::Diagnostic;
use aigw_ir::Ir;
use aigw_syntax::model::HttpFilterType;
use aigw_syntax::{Kind, Spec};

/// HTTPRoute filters aigw does not apply (extension references, CORS, external auth, and
/// filters on a single backend) are refused by name.
pub(crate) fn check(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, route) in ir.objects(Kind::HTTPRoute) {
        let Some(Spec::HTTPRoute(spec)) = &route.spec else {
            continue;
        };
        for (r, rule) in spec.rules.iter().enumerate() {
            let refused = rule.filters.iter().enumerate().filter_map(|(f, filter)| {
                let supported = matches!(
                    filter.filter_type,
                    HttpFilterType::RequestHeaderModifier
                        | HttpFilterType::ResponseHeaderModifier
                        | HttpFilterType::URLRewrite
                        | HttpFilterType::RequestRedirect
                        | HttpFilterType::RequestMirror
                );
                (!supported).then(|| {
                    (
                        format!("spec.rules[{r}].filters[{f}].type"),
                        format!("the HTTPRoute filter `{}` yet", filter.filter_type.as_str()),
                    )
                })
            });
            let on_backends = rule
                .backend_refs
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.filters.is_empty())
                .map(|(b, _)| {
                    (
                        format!("spec.rules[{r}].backendRefs[{b}].filters"),
                        "filters on a single backend yet".to_owned(),
                    )
                });
            for (field, what) in refused.chain(on_backends).collect::<Vec<_>>() {
                let span = route.origin.span_of(&field);
                out.push(
                    diagnostics::unsupported_policy(
                        span,
                        &field,
                        &what,
                        "aigw applies RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect and RequestMirror on a rule; a request it cannot filter as written is refused rather than sent unfiltered",
                    )
                    .with_resource(route.resource()),
                );
            }
        }
    }
}
