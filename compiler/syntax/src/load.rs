//! Documents → objects: dispatch on `apiVersion`/`kind`, check each document's structure against
//! its kind's schema, read it into the typed model, and report duplicates. Every document is
//! isolated: one that cannot be read still yields its identity where it has one, and never stops
//! the others.
//!
//! The same object given twice with the same content (one file under two paths, or overlays
//! concatenated by a GitOps tool) is one object, as the API server sees a re-apply: the copy is
//! merged without a word, and what it would report again is dropped with it. Only two different
//! definitions of one identity are an error. A file that is not UTF-8 is reported at its first
//! bad byte and not read further; an input with no object at all is a warning here, which
//! `aigw compile` makes an error (see `Checked::require_objects` in the CLI).

use crate::diagnostics;
use crate::model::*;
use crate::schema::Compiled;
use crate::yaml::{Document, Node, Value, parse_chunk, split_documents};
use aigw_diag::{Diagnostic, FileId, SourceMap};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// All objects of a compilation, sorted by kind, namespace and name, and what reading them found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads every file of `sources`. The result does not depend on the order of files or of
/// documents within them.
pub fn load(sources: &SourceMap) -> Loaded {
    let files: Vec<FileId> = sources.files().map(|(id, _)| id).collect();
    assemble(sources, read(sources, &files, true))
}

/// Reads each of `files` alone, unsorted: for a caller that keeps what each file gave between
/// compilations and reads again only the files that changed (the controller). [`assemble`]
/// joins such parts into what [`load`] gives.
pub fn load_each(sources: &SourceMap, files: &[FileId]) -> Vec<(FileId, Loaded)> {
    files
        .iter()
        .zip(read(sources, files, false))
        .map(|(&file, loaded)| (file, loaded))
        .collect()
}

/// Sorts and checks the parts of a compilation as [`load`] does: duplicates (a copy with the
/// same content merged, another definition an error) and an input with no object.
pub fn assemble(sources: &SourceMap, parts: impl IntoIterator<Item = Loaded>) -> Loaded {
    let mut loaded = Loaded::default();
    for part in parts {
        loaded.objects.extend(part.objects);
        loaded.diagnostics.extend(part.diagnostics);
    }
    dedup(sources, &mut loaded);
    let errors = loaded
        .diagnostics
        .iter()
        .any(|d| d.severity() == aigw_diag::Severity::Error);
    if loaded.objects.is_empty() && !errors {
        let files: Vec<_> = sources.files().map(|(id, _)| id).collect();
        let first = match files.as_slice() {
            [only] => Some(aigw_diag::Span::file_start(*only)),
            _ => None,
        };
        loaded
            .diagnostics
            .push(diagnostics::no_objects(files.len(), first));
    }
    loaded
}

/// Reads the documents of `files` on every core. `joined`: one part for all (copies of a
/// document across files read once); otherwise one part per file, in the order given.
fn read(sources: &SourceMap, files: &[FileId], joined: bool) -> Vec<Loaded> {
    let mut jobs = Vec::new();
    let mut unreadable: Vec<Loaded> = Vec::new();
    for (slot, &file) in files.iter().enumerate() {
        let slot = if joined { 0 } else { slot };
        let source = sources.file(file);
        if let Some(at) = source.not_utf8() {
            // U+FFFD, three bytes, stands where the bad sequence was.
            let end = (at + 3).min(source.text().len() as u32);
            unreadable.push(Loaded {
                objects: Vec::new(),
                diagnostics: vec![diagnostics::not_utf8(aigw_diag::Span::new(file, at, end))],
            });
            continue;
        }
        jobs.extend(
            split_documents(source.text())
                .into_iter()
                .enumerate()
                .map(|(i, (start, chunk))| (slot, (file, i, start, chunk))),
        );
    }
    if joined {
        let mut docs: Vec<_> = jobs.iter().map(|(_, job)| *job).collect();
        drop_copies(sources, &mut docs);
        jobs = docs.into_iter().map(|job| (0, job)).collect();
    }
    // Documents are independent: read them on every core. The result is sorted afterwards, so
    // the split does not change it.
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    let per_thread = jobs.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<(usize, Loaded)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per_thread)
            .map(|jobs| scope.spawn(move || load_jobs(jobs)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut out: Vec<Loaded> = vec![Loaded::default(); if joined { 1 } else { files.len() }];
    for (slot, part) in parts.into_iter().flatten() {
        out[slot].objects.extend(part.objects);
        out[slot].diagnostics.extend(part.diagnostics);
    }
    if joined {
        for part in unreadable {
            out[0].diagnostics.extend(part.diagnostics);
        }
    } else {
        // A file that is not UTF-8 gave no job: its one diagnostic is its part.
        let mut unreadable = unreadable.into_iter();
        for (slot, &file) in files.iter().enumerate() {
            if sources.file(file).not_utf8().is_some()
                && let Some(part) = unreadable.next()
            {
                out[slot] = part;
            }
        }
    }
    out
}

/// Drops every document whose text is a copy of one earlier in (file name, position) order:
/// read twice, it would only report the same things twice. Texts are compared without their
/// `---` marker and surrounding blank space.
fn drop_copies(sources: &SourceMap, jobs: &mut Vec<Job<'_>>) {
    fn text(chunk: &str) -> &str {
        let chunk = chunk.trim();
        chunk.strip_prefix("---").unwrap_or(chunk).trim()
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| (sources.file(jobs[j].0).name(), jobs[j].1));
    let mut seen = std::collections::HashSet::with_capacity(jobs.len());
    let mut keep = vec![false; jobs.len()];
    for j in order {
        keep[j] = seen.insert(text(jobs[j].3));
    }
    let mut keep = keep.into_iter();
    jobs.retain(|_| keep.next().unwrap_or(true));
}

/// Reads each document of `jobs`; consecutive documents of one slot share one part.
fn load_jobs(jobs: &[(usize, Job<'_>)]) -> Vec<(usize, Loaded)> {
    let mut parts: Vec<(usize, Loaded)> = Vec::new();
    for &(slot, (file, index, start, chunk)) in jobs {
        if parts.last().is_none_or(|(s, _)| *s != slot) {
            parts.push((slot, Loaded::default()));
        }
        let Some((_, loaded)) = parts.last_mut() else {
            continue;
        };
        match parse_chunk(file, start, chunk) {
            Ok(Some(root)) => {
                if let Some(object) =
                    load_document(Document { index, root }, &mut loaded.diagnostics)
                {
                    loaded.objects.push(object);
                }
            }
            Ok(None) => {}
            Err(diagnostic) => loaded.diagnostics.push(diagnostic),
        }
    }
    parts
}

/// One document to read: its file, its position in the file, its offset and its text.
type Job<'a> = (FileId, usize, usize, &'a str);

/// Sorts objects by identity and keeps the first definition of each, by file name and position.
/// A later copy with the same content is dropped with the diagnostics it raised; a later
/// definition with other content is an error.
fn dedup(sources: &SourceMap, loaded: &mut Loaded) {
    let position = |o: &Object| (sources.file(o.origin.root.span.file).name(), o.origin.index);
    loaded.objects.sort_by(|a, b| {
        (a.kind, a.group, &a.namespace, &a.name)
            .cmp(&(b.kind, b.group, &b.namespace, &b.name))
            .then_with(|| position(a).cmp(&position(b)))
    });
    let mut kept: Vec<Object> = Vec::with_capacity(loaded.objects.len());
    let mut copies = Vec::new();
    for object in loaded.objects.drain(..) {
        match kept.last() {
            Some(first)
                if first.kind == object.kind
                    && first.kind_name == object.kind_name
                    && first.namespace == object.namespace
                    && first.name == object.name =>
            {
                // Content, not text: comments, key order and quoting do not make two objects.
                if first.origin.root.to_json() == object.origin.root.to_json() {
                    copies.push(object.origin.root.span);
                    continue;
                }
                let what = format!("`{}`", object.resource());
                loaded.diagnostics.push(
                    diagnostics::duplicate_object(
                        object.origin.key_span_of("metadata.name"),
                        first.origin.key_span_of("metadata.name"),
                        &what,
                    )
                    .with_resource(object.resource()),
                );
            }
            _ => kept.push(object),
        }
    }
    loaded.objects = kept;
    if !copies.is_empty() {
        let inside = |d: &Diagnostic| {
            d.primary().is_some_and(|p| {
                copies.iter().any(|c| {
                    c.file == p.span.file && c.start <= p.span.start && p.span.end <= c.end
                })
            })
        };
        loaded.diagnostics.retain(|d| !inside(d));
    }
}

fn load_document(document: Document, out: &mut Vec<Diagnostic>) -> Option<Object> {
    let root = &document.root;
    let doc_span = root.span;
    if !matches!(root.value, Value::Map(_)) {
        out.push(diagnostics::not_an_object(
            doc_span,
            "the document is not a mapping",
        ));
        return None;
    }
    // A document with neither (a Helm values file, say) is not a manifest: pass it over.
    if root.get("apiVersion").is_none() && root.get("kind").is_none() {
        out.push(diagnostics::not_a_manifest(doc_span));
        return None;
    }
    let (Some(api_version), Some(kind)) = (
        root.get("apiVersion").and_then(Node::as_str),
        root.get("kind").and_then(Node::as_str),
    ) else {
        out.push(diagnostics::not_an_object(
            doc_span,
            "`apiVersion` and `kind` must both be strings",
        ));
        return None;
    };
    let kind_span = root.get("kind").map_or(doc_span, |n| n.span);
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(info) = KINDS.iter().find(|k| k.group == group && k.name == kind) else {
        out.push(unrecognised(kind_span, api_version, group, kind));
        return None;
    };
    if !info.versions.contains(&version) {
        let span = root.get("apiVersion").map_or(doc_span, |n| n.span);
        out.push(diagnostics::unsupported_version(
            span,
            api_version,
            kind,
            info.versions,
        ));
        return None;
    }
    let origin = Origin {
        root: Arc::new(document.root),
        index: document.index,
    };
    read_object(info, origin, out)
}

/// An unknown kind in one of the groups whose kinds we own is an error (a typo there drops a
/// whole route); anything else is passed over with a note.
fn unrecognised(span: aigw_diag::Span, api_version: &str, group: &str, kind: &str) -> Diagnostic {
    if group == AIGW_GROUP {
        let names = KINDS
            .iter()
            .filter(|k| k.group == AIGW_GROUP)
            .map(|k| k.name);
        diagnostics::unknown_kind(span, api_version, kind, diagnostics::closest(kind, names))
    } else {
        diagnostics::passed_over(span, api_version, kind)
    }
}

fn read_object(info: &KindInfo, origin: Origin, out: &mut Vec<Diagnostic>) -> Option<Object> {
    let mut found = Vec::new();
    let removed = if info.kind == Kind::AIServiceBackend {
        AISB_REMOVED_FIELDS
    } else {
        &[]
    };
    let (meta, spec) = match info.kind {
        Kind::AIGatewayRoute => typed(&origin, removed, &mut found, |s| {
            Spec::AIGatewayRoute(Box::new(s))
        }),
        Kind::AIServiceBackend => typed(&origin, removed, &mut found, |s| {
            Spec::AIServiceBackend(Box::new(s))
        }),
        Kind::BackendSecurityPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::BackendSecurityPolicy(Box::new(s))
        }),
        Kind::GatewayConfig => typed(&origin, removed, &mut found, |s| {
            Spec::GatewayConfig(Box::new(s))
        }),
        Kind::MCPRoute => typed(&origin, removed, &mut found, |s| {
            Spec::MCPRoute(Box::new(s))
        }),
        Kind::QuotaPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::QuotaPolicy(Box::new(s))
        }),
        Kind::GatewayClass => typed(&origin, removed, &mut found, |s| {
            Spec::GatewayClass(Box::new(s))
        }),
        Kind::Gateway => typed(&origin, removed, &mut found, |s| Spec::Gateway(Box::new(s))),
        Kind::HTTPRoute => typed(&origin, removed, &mut found, |s| {
            Spec::HTTPRoute(Box::new(s))
        }),
        Kind::ReferenceGrant => typed(&origin, removed, &mut found, |s| {
            Spec::ReferenceGrant(Box::new(s))
        }),
        Kind::BackendTLSPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::BackendTLSPolicy(Box::new(s))
        }),
        Kind::Backend => typed(&origin, removed, &mut found, |s| Spec::Backend(Box::new(s))),
        Kind::SecurityPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::SecurityPolicy(Box::new(s))
        }),
        Kind::ModelAccessPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::ModelAccessPolicy(Box::new(s))
        }),
        Kind::BackendTrafficPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::BackendTrafficPolicy(Box::new(s))
        }),
        Kind::PromptGuardPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::PromptGuardPolicy(Box::new(s))
        }),
        Kind::ResponseCachePolicy => typed(&origin, removed, &mut found, |s| {
            Spec::ResponseCachePolicy(Box::new(s))
        }),
        Kind::EnvoyExtensionPolicy => typed(&origin, removed, &mut found, |s| {
            Spec::EnvoyExtensionPolicy(Box::new(s))
        }),
        Kind::Secret => {
            let secret = decode::<SecretManifest>(&origin, &[], &mut found);
            let meta = secret.as_ref().map(|s| s.metadata.clone());
            (
                meta,
                secret.map(|s| Spec::Secret(s.keys().map(str::to_owned).collect())),
            )
        }
        Kind::InferencePool | Kind::EnvoyGatewayCarried => {
            let manifest = decode::<LooseManifest>(&origin, &[], &mut found);
            (manifest.map(|m| m.metadata), Some(Spec::Carried))
        }
    };
    let resource_meta = meta.or_else(|| fallback_meta(&origin.root));
    let name = resource_meta.as_ref().and_then(|m| m.name.clone());
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        out.extend(found);
        out.push(diagnostics::not_an_object(
            origin.key_span_of("metadata"),
            "`metadata.name` is missing",
        ));
        return None;
    };
    let meta = resource_meta.unwrap_or_default();
    // Objects with no namespace are in `default`, as `kubectl apply` puts them; GatewayClass is
    // cluster-scoped.
    let namespace = match info.kind {
        Kind::GatewayClass => String::new(),
        _ => meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
    };
    let object = Object {
        kind: info.kind,
        group: info.group,
        kind_name: info.name,
        api_version: origin
            .root
            .get("apiVersion")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_owned(),
        name,
        namespace,
        labels: meta.labels,
        annotations: meta.annotations,
        spec,
        origin,
    };
    let resource = object.resource();
    out.extend(found.into_iter().map(|d| d.with_resource(resource.clone())));
    Some(object)
}

/// Checks and reads a kind with a `spec` into its typed form.
fn typed<S: DeserializeOwned + JsonSchema + 'static>(
    origin: &Origin,
    removed: &[(&str, &str)],
    out: &mut Vec<Diagnostic>,
    wrap: fn(S) -> Spec,
) -> (Option<ObjectMeta>, Option<Spec>) {
    match decode::<Manifest<S>>(origin, removed, out) {
        Some(manifest) => (Some(manifest.metadata), Some(wrap(manifest.spec))),
        None => (None, None),
    }
}

/// Schema check, then serde. A serde failure after a clean schema check would be a model bug;
/// it is still reported as a diagnostic rather than a panic.
fn decode<T: DeserializeOwned + JsonSchema + 'static>(
    origin: &Origin,
    removed: &[(&str, &str)],
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    let before = out.len();
    let json = Compiled::of::<T>().check(&origin.root, removed, out)?;
    match serde_json::from_value::<T>(json) {
        Ok(value) => Some(value),
        Err(error) => {
            // Missing required parts were already reported by the schema check.
            if out.len() == before {
                out.push(diagnostics::decode_failed(
                    origin.root.span,
                    "",
                    &error.to_string(),
                ));
            }
            None
        }
    }
}

/// AIServiceBackend fields of earlier reference releases that its API server now prunes (see `Compiled::check`).
const AISB_REMOVED_FIELDS: &[(&str, &str)] = &[(
    "spec.timeouts",
    "AIServiceBackend `timeouts` moved to the AIGatewayRoute rule: set `spec.rules[].timeouts` there",
)];

/// Reads `metadata` alone, for objects whose spec is broken, so they keep their identity.
fn fallback_meta(root: &Node) -> Option<ObjectMeta> {
    let metadata = root.get("metadata")?;
    let text = |key: &str| metadata.get(key).and_then(Node::as_str).map(str::to_owned);
    Some(ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        ..ObjectMeta::default()
    })
}
