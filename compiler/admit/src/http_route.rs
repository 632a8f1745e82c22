//! Admission rules of HTTPRoute filters, with Gateway API's CEL messages: each filter carries
//! the block of its type and no other, path modifiers carry the value of their type, a prefix
//! rewrite needs exactly one PathPrefix match, a rule does not both redirect and rewrite nor
//! repeat a filter other than a mirror, and a mirror's share and backend are well formed.

use crate::Cx;
use aigw_syntax::model::*;

pub(crate) fn admit(cx: &mut Cx<'_>, spec: &HttpRouteSpec) {
    for (r, rule) in spec.rules.iter().enumerate() {
        let mut kinds = Vec::new();
        for (f, filter) in rule.filters.iter().enumerate() {
            let at = format!("spec.rules[{r}].filters[{f}]");
            filter_block(cx, &at, filter);
            kinds.push(filter.filter_type);
            let paths = [
                filter.url_rewrite.as_ref().and_then(|u| u.path.as_ref()),
                filter
                    .request_redirect
                    .as_ref()
                    .and_then(|u| u.path.as_ref()),
            ];
            for path in paths.into_iter().flatten() {
                path_modifier(cx, &at, path, rule);
            }
            if let Some(mirror) = &filter.request_mirror {
                request_mirror(cx, &format!("{at}.requestMirror"), mirror);
            }
        }
        for once in [
            HttpFilterType::RequestHeaderModifier,
            HttpFilterType::ResponseHeaderModifier,
            HttpFilterType::RequestRedirect,
            HttpFilterType::URLRewrite,
        ] {
            if kinds.iter().filter(|k| **k == once).count() > 1 {
                cx.rule(
                    &format!("spec.rules[{r}].filters"),
                    &format!("{} filter cannot be repeated", once.as_str()),
                );
            }
        }
        if kinds.contains(&HttpFilterType::RequestRedirect)
            && kinds.contains(&HttpFilterType::URLRewrite)
        {
            cx.rule(
                &format!("spec.rules[{r}].filters"),
                "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
            );
        }
    }
}

/// Gateway API's rules of a mirror: a share given one way, a fraction at most whole, a port
/// for a Service.
fn request_mirror(cx: &mut Cx<'_>, at: &str, mirror: &RequestMirror) {
    if mirror.percent.is_some() && mirror.fraction.is_some() {
        cx.rule(
            at,
            "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
        );
    }
    if let Some(fraction) = mirror.fraction
        && fraction.numerator > fraction.denominator
    {
        cx.rule(
            &format!("{at}.fraction"),
            "numerator must be less than or equal to denominator",
        );
    }
    let backend = &mirror.backend_ref;
    if backend.group.is_empty() && backend.kind == "Service" && backend.port.is_none() {
        cx.rule(
            &format!("{at}.backendRef"),
            "Must have port for Service reference",
        );
    }
}

/// The block of the filter's type is set, and no other.
fn filter_block(cx: &mut Cx<'_>, at: &str, filter: &HttpRouteFilter) {
    let blocks = [
        (
            HttpFilterType::RequestHeaderModifier,
            "requestHeaderModifier",
            filter.request_header_modifier.is_some(),
        ),
        (
            HttpFilterType::ResponseHeaderModifier,
            "responseHeaderModifier",
            filter.response_header_modifier.is_some(),
        ),
        (
            HttpFilterType::URLRewrite,
            "urlRewrite",
            filter.url_rewrite.is_some(),
        ),
        (
            HttpFilterType::RequestRedirect,
            "requestRedirect",
            filter.request_redirect.is_some(),
        ),
        (
            HttpFilterType::RequestMirror,
            "requestMirror",
            filter.request_mirror.is_some(),
        ),
        (
            HttpFilterType::ExtensionRef,
            "extensionRef",
            filter.extension_ref.is_some(),
        ),
        (HttpFilterType::CORS, "cors", filter.cors.is_some()),
        (
            HttpFilterType::ExternalAuth,
            "externalAuth",
            filter.external_auth.is_some(),
        ),
    ];
    for (kind, block, set) in blocks {
        let ours = kind == filter.filter_type;
        if ours && !set {
            cx.rule(
                at,
                &format!(
                    "filter.{block} must be specified for {} filter.type",
                    kind.as_str()
                ),
            );
        }
        if !ours && set {
            cx.rule(
                at,
                &format!(
                    "filter.{block} must be nil if the filter.type is not {}",
                    kind.as_str()
                ),
            );
        }
    }
}

fn path_modifier(cx: &mut Cx<'_>, at: &str, path: &PathModifier, rule: &HttpRouteRule) {
    let (full, prefix) = (
        path.replace_full_path.is_some(),
        path.replace_prefix_match.is_some(),
    );
    match path.modifier_type {
        PathModifierType::ReplaceFullPath if !full || prefix => cx.rule(
            at,
            "replaceFullPath must be specified when type is set to 'ReplaceFullPath'",
        ),
        PathModifierType::ReplacePrefixMatch if !prefix || full => cx.rule(
            at,
            "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'",
        ),
        PathModifierType::ReplacePrefixMatch => {
            let prefixes = rule
                .matches
                .iter()
                .filter(|m| {
                    m.path
                        .as_ref()
                        .is_some_and(|p| p.match_type == PathMatchType::PathPrefix)
                })
                .count();
            if prefixes != 1 || rule.matches.len() != 1 {
                cx.rule(
                    at,
                    "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
                );
            }
        }
        PathModifierType::ReplaceFullPath => {}
    }
}
