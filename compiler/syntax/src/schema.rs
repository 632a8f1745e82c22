//! Structural validation: a spanned YAML tree checked against the JSON Schema that schemars
//! derives from our model types, the way an API server checks an object against a CRD's OpenAPI
//! schema. One walk reports every problem (unknown fields with a "did you mean", wrong types,
//! missing required fields, enums, lengths, item counts, ranges and patterns) and returns the
//! cleaned JSON value (unknown and wrong-typed parts dropped) for serde to read the typed model
//! from, so one typo does not hide the rest of an object from later checks.
//!
//! The model types are the single source of truth: the schema is derived from them once per type
//! (`Compiled::of::<T>()`) and cached.

use crate::diagnostics;
use crate::yaml::{Node, Value};
use aigw_diag::{Diagnostic, Span};
use regex::Regex;
use schemars::JsonSchema;
use serde_json::{Map, Value as Json};
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The JSON types a schema admits, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Types(u8);

impl Types {
    const NULL: u8 = 1;
    const BOOL: u8 = 2;
    const INT: u8 = 4;
    const NUM: u8 = 8;
    const STR: u8 = 16;
    const ARR: u8 = 32;
    const OBJ: u8 = 64;
    const ANY: u8 = 127;

    fn from_name(name: &str) -> u8 {
        match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOL,
            "integer" => Self::INT,
            "number" => Self::NUM | Self::INT,
            "string" => Self::STR,
            "array" => Self::ARR,
            "object" => Self::OBJ,
            _ => Self::ANY,
        }
    }

    fn admits(self, value: &Value) -> bool {
        let bit = match value {
            Value::Null => Self::NULL,
            Value::Bool(_) => Self::BOOL,
            Value::Int(_) => Self::INT,
            Value::Float(_) => Self::NUM,
            Value::String(_) => Self::STR,
            Value::Seq(_) => Self::ARR,
            Value::Map(_) => Self::OBJ,
        };
        self.0 & bit != 0
    }

    /// The first named type, for "expected X" messages.
    fn expected(self) -> &'static str {
        let names = [
            (Self::OBJ, "object"),
            (Self::ARR, "array"),
            (Self::STR, "string"),
            (Self::INT, "integer"),
            (Self::NUM, "number"),
            (Self::BOOL, "boolean"),
        ];
        names
            .iter()
            .find(|(bit, _)| self.0 & bit != 0)
            .map_or("null", |(_, n)| n)
    }
}

type Id = usize;

/// One compiled schema node.
#[derive(Debug, Default)]
struct Schema {
    types: Types,
    enum_values: Option<Vec<String>>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    pattern: Option<(String, Regex)>,
    items: Option<Id>,
    properties: Vec<(String, Id)>,
    additional: Additional,
    required: Vec<String>,
    /// `Option<T>` of a shared definition: null is absent, anything else is checked against it.
    alias: Option<Id>,
}

#[derive(Debug, Default)]
enum Additional {
    #[default]
    Any,
    Forbid,
    Schema(Id),
}

/// A compiled schema for one root type.
#[derive(Debug)]
pub struct Compiled {
    nodes: Vec<Schema>,
}

impl Compiled {
    /// The compiled schema of `T`, derived once per process.
    pub fn of<T: JsonSchema + 'static>() -> Arc<Compiled> {
        static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Compiled>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
                Arc::new(Compiled::new(schema.as_value()))
            })
            .clone()
    }

    fn new(root: &Json) -> Self {
        let mut builder = Builder {
            nodes: Vec::new(),
            defs: HashMap::new(),
            root,
        };
        builder.compile(root);
        Compiled {
            nodes: builder.nodes,
        }
    }

    /// Checks `node` against the root schema. Returns the cleaned JSON value, or `None` when the
    /// root itself has the wrong type.
    ///
    /// `removed` lists field paths the reference project once had and its API server now prunes,
    /// with advice: they are warnings, not errors, so manifests written for older releases still
    /// check (a typo is still an error).
    pub fn check(
        &self,
        node: &Node,
        removed: &[(&str, &str)],
        out: &mut Vec<Diagnostic>,
    ) -> Option<Json> {
        let mut walker = Walker {
            compiled: self,
            out,
            path: String::new(),
            removed,
        };
        walker.check(0, node, node.span)
    }
}

struct Builder<'a> {
    nodes: Vec<Schema>,
    defs: HashMap<String, Id>,
    root: &'a Json,
}

impl Builder<'_> {
    /// Compiles one schema object into the arena and returns its id.
    fn compile(&mut self, json: &Json) -> Id {
        if let Some(reference) = json.get("$ref").and_then(Json::as_str) {
            return self.compile_ref(reference);
        }
        let id = self.nodes.len();
        self.nodes.push(Schema::default());
        let mut schema = Schema {
            types: Types(Types::ANY),
            ..Schema::default()
        };
        // `Option<Struct>` becomes `anyOf: [{$ref}, {type: null}]`: admit null, check the rest.
        if let Some(branches) = json
            .get("anyOf")
            .or_else(|| json.get("oneOf"))
            .and_then(Json::as_array)
        {
            return self.compile_union(id, branches, json);
        }
        match json.get("type") {
            Some(Json::String(name)) => schema.types = Types(Types::from_name(name)),
            Some(Json::Array(names)) => {
                schema.types = Types(
                    names
                        .iter()
                        .filter_map(Json::as_str)
                        .map(Types::from_name)
                        .fold(0, |a, b| a | b),
                );
            }
            _ => {}
        }
        if json == &Json::Bool(false) {
            schema.types = Types(0);
        }
        self.constraints(&mut schema, json);
        self.nodes[id] = schema;
        id
    }

    fn compile_ref(&mut self, reference: &str) -> Id {
        let name = reference.rsplit('/').next().unwrap_or(reference).to_owned();
        if let Some(&id) = self.defs.get(&name) {
            return id;
        }
        let def = self
            .root
            .get("$defs")
            .and_then(|d| d.get(&name))
            .cloned()
            .unwrap_or(Json::Bool(true));
        // Reserve the id first so recursive types terminate.
        let id = self.nodes.len();
        self.nodes.push(Schema::default());
        self.defs.insert(name, id);
        let compiled = self.compile(&def);
        let schema = std::mem::take(&mut self.nodes[compiled]);
        self.nodes[id] = schema;
        id
    }

    fn compile_union(&mut self, id: Id, branches: &[Json], whole: &Json) -> Id {
        let mut nullable = false;
        let mut consts = Vec::new();
        let mut other = None;
        for branch in branches {
            if branch.get("type").and_then(Json::as_str) == Some("null") {
                nullable = true;
            } else if let Some(value) = branch.get("const").and_then(Json::as_str) {
                consts.push(value.to_owned());
            } else if let Some(values) = branch.get("enum").and_then(Json::as_array) {
                consts.extend(values.iter().filter_map(Json::as_str).map(str::to_owned));
            } else {
                other = Some(branch);
            }
        }
        let mut schema = match other {
            // The branch may be a shared definition: point at it rather than move it.
            Some(branch) => Schema {
                types: Types(Types::ANY),
                alias: Some(self.compile(branch)),
                ..Schema::default()
            },
            None => Schema {
                types: Types(Types::STR),
                enum_values: Some(consts),
                ..Schema::default()
            },
        };
        self.constraints(&mut schema, whole);
        if nullable {
            schema.types.0 |= Types::NULL;
        }
        self.nodes[id] = schema;
        id
    }

    fn constraints(&mut self, schema: &mut Schema, json: &Json) {
        let uint = |key: &str| json.get(key).and_then(Json::as_u64);
        schema.min_len = uint("minLength").or(schema.min_len);
        schema.max_len = uint("maxLength").or(schema.max_len);
        schema.min_items = uint("minItems").or(schema.min_items);
        schema.max_items = uint("maxItems").or(schema.max_items);
        schema.minimum = json
            .get("minimum")
            .and_then(Json::as_f64)
            .or(schema.minimum);
        schema.maximum = json
            .get("maximum")
            .and_then(Json::as_f64)
            .or(schema.maximum);
        if let Some(values) = json.get("enum").and_then(Json::as_array) {
            schema.enum_values = Some(
                values
                    .iter()
                    .filter_map(Json::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some(pattern) = json.get("pattern").and_then(Json::as_str) {
            // Patterns are ours and tested; one that does not compile is skipped, not fatal.
            if let Ok(regex) = Regex::new(pattern) {
                schema.pattern = Some((pattern.to_owned(), regex));
            }
        }
        if let Some(items) = json.get("items") {
            schema.items = Some(self.compile(items));
        }
        if let Some(props) = json.get("properties").and_then(Json::as_object) {
            let mut properties: Vec<(String, Id)> = props
                .iter()
                .map(|(name, sub)| (name.clone(), self.compile(sub)))
                .collect();
            properties.sort_by(|a, b| a.0.cmp(&b.0));
            schema.properties = properties;
        }
        schema.additional = match json.get("additionalProperties") {
            Some(Json::Bool(false)) => Additional::Forbid,
            Some(Json::Bool(true)) | None => Additional::Any,
            Some(sub) => Additional::Schema(self.compile(sub)),
        };
        if let Some(required) = json.get("required").and_then(Json::as_array) {
            schema.required = required
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect();
        }
    }
}

struct Walker<'a> {
    compiled: &'a Compiled,
    out: &'a mut Vec<Diagnostic>,
    path: String,
    removed: &'a [(&'a str, &'a str)],
}

impl Walker<'_> {
    /// Checks one node; `anchor` is where to point for problems of the node as a whole (the key
    /// that introduced it).
    fn check(&mut self, id: Id, node: &Node, anchor: Span) -> Option<Json> {
        let schema = &self.compiled.nodes[id];
        if let Some(inner) = schema.alias {
            return match node.value {
                Value::Null => None,
                _ => self.check(inner, node, anchor),
            };
        }
        if !schema.types.admits(&node.value) {
            // `null` for an optional field means "absent", as the API server treats it.
            if matches!(node.value, Value::Null) {
                return None;
            }
            self.out.push(diagnostics::wrong_type(
                node.span,
                &self.path,
                schema.types.expected(),
                node.value.type_name(),
            ));
            return None;
        }
        match &node.value {
            Value::Null => Some(Json::Null),
            Value::Bool(b) => Some(Json::Bool(*b)),
            Value::Int(i) => {
                self.check_range(schema, *i as f64, node.span);
                Some(Json::from(*i))
            }
            Value::Float(f) => {
                self.check_range(schema, *f, node.span);
                Some(serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number))
            }
            Value::String(s) => {
                self.check_string(schema, s, node.span);
                Some(Json::String(s.clone()))
            }
            Value::Seq(items) => Some(self.check_seq(id, items, node.span, anchor)),
            Value::Map(entries) => Some(self.check_map(id, entries, anchor)),
        }
    }

    fn check_range(&mut self, schema: &Schema, value: f64, span: Span) {
        if let Some(min) = schema.minimum.filter(|min| value < *min) {
            self.out
                .push(diagnostics::below_minimum(span, &self.path, value, min));
        }
        if let Some(max) = schema.maximum.filter(|max| value > *max) {
            self.out
                .push(diagnostics::above_maximum(span, &self.path, value, max));
        }
    }

    fn check_string(&mut self, schema: &Schema, s: &str, span: Span) {
        if let Some(values) = &schema.enum_values
            && !values.iter().any(|v| v == s)
        {
            self.out
                .push(diagnostics::unsupported_value(span, &self.path, s, values));
            return;
        }
        let len = s.chars().count() as u64;
        if let Some(min) = schema.min_len.filter(|min| len < *min) {
            self.out.push(diagnostics::too_short(span, &self.path, min));
        }
        if let Some(max) = schema.max_len.filter(|max| len > *max) {
            self.out.push(diagnostics::too_long(span, &self.path, max));
        }
        if let Some((text, regex)) = &schema.pattern
            && !regex.is_match(s)
        {
            self.out
                .push(diagnostics::pattern_mismatch(span, &self.path, s, text));
        }
    }

    fn check_seq(&mut self, id: Id, items: &[Node], span: Span, anchor: Span) -> Json {
        let schema = &self.compiled.nodes[id];
        let count = items.len() as u64;
        if let Some(max) = schema.max_items.filter(|max| count > *max) {
            self.out.push(diagnostics::too_many_items(
                items[max as usize].span,
                &self.path,
                count,
                max,
            ));
        }
        if let Some(min) = schema.min_items.filter(|min| count < *min) {
            self.out.push(diagnostics::too_few_items(
                if items.is_empty() { anchor } else { span },
                &self.path,
                min,
            ));
        }
        let Some(item_schema) = schema.items else {
            return Json::Array(items.iter().map(Node::to_json).collect());
        };
        let base = self.path.len();
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            use std::fmt::Write;
            let _ = write!(self.path, "[{index}]");
            // A wrong-typed item is reported and dropped.
            if let Some(value) = self.check(item_schema, item, item.span) {
                out.push(value);
            }
            self.path.truncate(base);
        }
        Json::Array(out)
    }

    fn check_map(&mut self, id: Id, entries: &[(crate::yaml::Key, Node)], anchor: Span) -> Json {
        let schema = &self.compiled.nodes[id];
        let mut out = Map::new();
        let base = self.path.len();
        for (key, value) in entries {
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key.name);
            let sub = match schema
                .properties
                .binary_search_by(|(name, _)| name.as_str().cmp(&key.name))
            {
                Ok(i) => Some(schema.properties[i].1),
                Err(_) => match schema.additional {
                    Additional::Any => {
                        out.insert(key.name.clone(), value.to_json());
                        None
                    }
                    Additional::Schema(sub) => Some(sub),
                    Additional::Forbid if self.removed.iter().any(|(p, _)| *p == self.path) => {
                        let advice = self
                            .removed
                            .iter()
                            .find(|(p, _)| *p == self.path)
                            .map_or("", |(_, a)| a);
                        self.out
                            .push(diagnostics::removed_field(key.span, &self.path, advice));
                        None
                    }
                    Additional::Forbid => {
                        let known: Vec<&str> =
                            schema.properties.iter().map(|(n, _)| n.as_str()).collect();
                        self.out.push(diagnostics::unknown_field(
                            key.span, &self.path, &key.name, &known,
                        ));
                        None
                    }
                },
            };
            if let Some(sub) = sub
                && let Some(json) = self.check(sub, value, key.span)
            {
                out.insert(key.name.clone(), json);
            }
            self.path.truncate(base);
        }
        for name in &schema.required {
            if !out.contains_key(name) && !entries.iter().any(|(k, _)| &k.name == name) {
                self.out
                    .push(diagnostics::required_field(anchor, &self.path, name));
            }
        }
        Json::Object(out)
    }
}
