//! Envoy's ext_proc messages as the processor reads and writes them: header maps to and from
//! `http`, the answers of each phase (continue with mutations, replace, answer locally), the
//! streamed-body mode switch, and dynamic metadata. Nothing here knows a request's state.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as PbHeaderMap, HeaderValue as PbHeaderValue, HeaderValueOption,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ProcessingMode, processing_mode::BodySendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse, TrailersResponse, body_mutation, common_response::ResponseStatus,
    processing_response::Response as Answer,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The dynamic-metadata namespace the reference writes (and the compiled Envoy config accepts).
pub const NAMESPACE: &str = "io.envoy.ai_gateway";

/// Pseudo-headers and the values Envoy sent with them, and the regular headers as an
/// `http::HeaderMap` (names Envoy sends are lowercase already).
#[derive(Debug, Default)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub status: Option<u16>,
    pub headers: HeaderMap,
}

impl Head {
    pub fn read(map: Option<&PbHeaderMap>) -> Head {
        let mut head = Head::default();
        let Some(map) = map else { return head };
        for entry in &map.headers {
            let value: &[u8] = if entry.raw_value.is_empty() {
                entry.value.as_bytes()
            } else {
                &entry.raw_value
            };
            match entry.key.as_str() {
                ":method" => head.method = String::from_utf8_lossy(value).into_owned(),
                ":path" => head.path = String::from_utf8_lossy(value).into_owned(),
                ":authority" => head.authority = String::from_utf8_lossy(value).into_owned(),
                ":status" => {
                    head.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
                }
                key if key.starts_with(':') => {}
                key => {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(key.as_bytes()),
                        HeaderValue::from_bytes(value),
                    ) {
                        head.headers.append(name, value);
                    }
                }
            }
        }
        head
    }
}

/// Header changes to send back: `set` overwrites (or adds), `remove` drops.
#[derive(Debug, Default)]
pub struct Mutation {
    set: Vec<HeaderValueOption>,
    remove: Vec<String>,
}

impl Mutation {
    pub fn set(&mut self, name: &str, value: &[u8]) {
        self.set.push(HeaderValueOption {
            header: Some(PbHeaderValue {
                key: name.to_owned(),
                value: String::new(),
                raw_value: value.to_vec(),
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..HeaderValueOption::default()
        });
    }

    pub fn remove(&mut self, name: &str) {
        self.remove.push(name.to_owned());
    }

    /// What turns `before` into `after`: changed and new headers set (all values of a
    /// repeated one joined as Envoy joins them), vanished ones removed.
    pub fn diff(before: &HeaderMap, after: &HeaderMap) -> Mutation {
        let mut mutation = Mutation::default();
        for name in after.keys() {
            let now: Vec<&HeaderValue> = after.get_all(name).iter().collect();
            let was: Vec<&HeaderValue> = before.get_all(name).iter().collect();
            if now != was {
                mutation.set(name.as_str(), &join(&now));
            }
        }
        for name in before.keys() {
            if !after.contains_key(name) {
                mutation.remove(name.as_str());
            }
        }
        mutation
    }

    /// Whether it sets header `name`.
    pub fn sets(&self, name: &str) -> bool {
        self.set
            .iter()
            .any(|h| h.header.as_ref().is_some_and(|h| h.key == name))
    }

    /// Keeps only the removals of names `keep` says yes to.
    pub fn keep_removals(&mut self, keep: impl Fn(&str) -> bool) {
        self.remove.retain(|name| keep(name));
    }

    /// Adds `other`'s changes after these.
    pub fn extend(&mut self, other: Mutation) {
        self.set.extend(other.set);
        self.remove.extend(other.remove);
    }

    fn into_pb(self) -> Option<HeaderMutation> {
        (!self.set.is_empty() || !self.remove.is_empty()).then_some(HeaderMutation {
            set_headers: self.set,
            remove_headers: self.remove,
        })
    }
}

fn join(values: &[&HeaderValue]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Which phase an answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

/// A phase's answer: go on, with header changes, a new body, and route re-selection.
#[derive(Debug, Default)]
pub struct Continue {
    pub headers: Mutation,
    /// The body in place of Envoy's (in a headers answer: replace the whole body, and send no
    /// more of this direction).
    pub body: Option<Vec<u8>>,
    pub clear_route_cache: bool,
    /// Switch the response body to streamed mode (answer to response headers only).
    pub stream_response: bool,
    pub metadata: Option<Struct>,
}

impl Continue {
    pub fn into_response(self, phase: Phase) -> ProcessingResponse {
        let replace =
            self.body.is_some() && matches!(phase, Phase::RequestHeaders | Phase::ResponseHeaders);
        let common = CommonResponse {
            status: if replace {
                ResponseStatus::ContinueAndReplace as i32
            } else {
                ResponseStatus::Continue as i32
            },
            header_mutation: self.headers.into_pb(),
            body_mutation: self.body.map(|body| BodyMutation {
                mutation: Some(body_mutation::Mutation::Body(body)),
            }),
            clear_route_cache: self.clear_route_cache,
            ..CommonResponse::default()
        };
        let response = match phase {
            Phase::RequestHeaders => Answer::RequestHeaders(HeadersResponse {
                response: Some(common),
            }),
            Phase::ResponseHeaders => Answer::ResponseHeaders(HeadersResponse {
                response: Some(common),
            }),
            Phase::RequestBody => Answer::RequestBody(BodyResponse {
                response: Some(common),
            }),
            Phase::ResponseBody => Answer::ResponseBody(BodyResponse {
                response: Some(common),
            }),
            Phase::RequestTrailers => Answer::RequestTrailers(TrailersResponse {
                header_mutation: common.header_mutation,
            }),
            Phase::ResponseTrailers => Answer::ResponseTrailers(TrailersResponse {
                header_mutation: common.header_mutation,
            }),
        };
        ProcessingResponse {
            response: Some(response),
            dynamic_metadata: self.metadata,
            mode_override: self.stream_response.then(|| ProcessingMode {
                response_body_mode: BodySendMode::Streamed as i32,
                ..ProcessingMode::default()
            }),
            ..ProcessingResponse::default()
        }
    }
}

/// A local answer in place of the backend's: status, headers and body.
pub fn immediate(status: u16, headers: &HeaderMap, body: Vec<u8>) -> ProcessingResponse {
    let mut mutation = Mutation::default();
    for (name, value) in headers {
        if name != http::header::CONTENT_LENGTH {
            mutation.set(name.as_str(), value.as_bytes());
        }
    }
    ProcessingResponse {
        response: Some(Answer::ImmediateResponse(ImmediateResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: mutation.into_pb(),
            body,
            ..ImmediateResponse::default()
        })),
        ..ProcessingResponse::default()
    }
}

/// `{NAMESPACE: {key: value, ...}}`, for `dynamic_metadata`.
pub fn metadata(fields: impl IntoIterator<Item = (String, Value)>) -> Struct {
    let inner = Struct {
        fields: fields.into_iter().collect(),
    };
    Struct {
        fields: [(
            NAMESPACE.to_owned(),
            Value {
                kind: Some(Kind::StructValue(inner)),
            },
        )]
        .into_iter()
        .collect(),
    }
}

pub fn number(value: u64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value as f64)),
    }
}

pub fn string(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}

/// A string attribute Envoy sent with the first message (`request_attributes`).
pub fn attribute<'a>(
    attributes: &'a std::collections::HashMap<String, Struct>,
    name: &str,
) -> Option<&'a Value> {
    attributes
        .get("envoy.filters.http.ext_proc")?
        .fields
        .get(name)
}
