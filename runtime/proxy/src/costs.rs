//! Request costs (`llmRequestCosts` of an AIGatewayRoute, and the GatewayConfig's
//! `globalLLMRequestCosts` for every route of its Gateways): compiled once per table generation,
//! evaluated once per request from its token usage. A CEL cost sees the variables the compiler
//! type-checked it against (`model`, `backend`, `route_name` as strings; the token counts as
//! uints) and must give an integer; a negative or failed result counts 0 and is logged, never
//! failing the request that already got its answer.

use aigw_providers::Usage;
use aigw_table::{RequestCost, Snapshot};
use std::sync::Arc;

/// What a cost counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Input,
    CachedInput,
    CacheCreationInput,
    Output,
    Reasoning,
    Total,
    Cel,
}

/// One compiled cost.
pub struct Cost {
    pub key: Arc<str>,
    kind: Kind,
    program: Option<Cel>,
}

/// A compiled CEL cost expression and the variables it reads (only those are bound when it
/// runs: binding all nine costs more than running it).
pub struct Cel {
    program: cel::Program,
    reads: Vec<&'static str>,
}

/// Every variable a cost expression may read.
const VARIABLES: [&str; 9] = [
    "model",
    "backend",
    "route_name",
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
];

impl Cel {
    pub fn compile(expression: &str) -> Result<Cel, String> {
        let program = cel::Program::compile(expression).map_err(|e| e.to_string())?;
        let referenced = program.references();
        let named = referenced.variables();
        let reads = VARIABLES
            .iter()
            .copied()
            .filter(|v| named.contains(v))
            .collect();
        Ok(Cel { program, reads })
    }
}

impl std::fmt::Debug for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cost")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The costs of every route, parallel to the table's routes, each with its Gateways' global
/// costs after its own (a key both define is the route's).
#[derive(Debug, Default)]
pub struct Costs {
    routes: Vec<Vec<Cost>>,
}

/// A cost that cannot be compiled (a table the compiler did not write).
#[derive(Debug, thiserror::Error)]
#[error("route `{route}`: cost `{key}`: {reason}")]
pub struct CostError {
    route: String,
    key: String,
    reason: String,
}

/// What a CEL cost may read besides the token counts.
pub struct Vars<'a> {
    pub model: &'a str,
    pub backend: &'a str,
    pub route: &'a str,
}

impl Costs {
    pub fn compile(snapshot: &Snapshot) -> Result<Self, CostError> {
        let table = snapshot.table();
        let mut routes = Vec::with_capacity(table.routes.len());
        for route in &table.routes {
            let mut costs: Vec<Cost> = Vec::new();
            let gateways = route
                .parents
                .iter()
                .filter_map(|p| table.gateways.get(p.gateway));
            let global = gateways.flat_map(|g| g.llm_request_costs.iter());
            for cost in route.llm_request_costs.iter().chain(global) {
                if costs.iter().any(|c| *c.key == *cost.metadata_key) {
                    continue;
                }
                costs.push(compile(&route.name, cost)?);
            }
            routes.push(costs);
        }
        Ok(Costs { routes })
    }

    /// The costs of route `index` for `usage`: (key, value) in declaration order. The keys
    /// are borrowed from the generation: no shared reference count is touched per request.
    pub fn evaluate(&self, route: usize, usage: &Usage, vars: &Vars<'_>) -> Vec<(&str, u64)> {
        let Some(costs) = self.routes.get(route) else {
            return Vec::new();
        };
        costs
            .iter()
            .map(|cost| (&*cost.key, cost.value(usage, vars)))
            .collect()
    }
}

fn compile(route: &str, cost: &RequestCost) -> Result<Cost, CostError> {
    let error = |reason: String| CostError {
        route: route.to_owned(),
        key: cost.metadata_key.clone(),
        reason,
    };
    let kind = match cost.kind.as_str() {
        "InputToken" => Kind::Input,
        "CachedInputToken" => Kind::CachedInput,
        "CacheCreationInputToken" => Kind::CacheCreationInput,
        "OutputToken" => Kind::Output,
        "ReasoningToken" => Kind::Reasoning,
        "TotalToken" => Kind::Total,
        "CEL" => Kind::Cel,
        other => return Err(error(format!("unknown cost type `{other}`"))),
    };
    let program = match (kind, &cost.cel) {
        (Kind::Cel, Some(expression)) => Some(
            Cel::compile(expression)
                .map_err(|e| error(format!("the CEL expression does not parse: {e}")))?,
        ),
        (Kind::Cel, None) => return Err(error("a CEL cost has no expression".to_owned())),
        _ => None,
    };
    Ok(Cost {
        key: cost.metadata_key.as_str().into(),
        kind,
        program,
    })
}

impl Cost {
    fn value(&self, usage: &Usage, vars: &Vars<'_>) -> u64 {
        match self.kind {
            Kind::Input => usage.input,
            Kind::CachedInput => usage.cached_input,
            Kind::CacheCreationInput => usage.cache_creation_input,
            Kind::Output => usage.output,
            Kind::Reasoning => usage.reasoning,
            Kind::Total => usage.total(),
            Kind::Cel => self
                .program
                .as_ref()
                .map_or(0, |p| run_cel(p, &self.key, usage, vars)),
        }
    }
}

/// CEL's standard library, built once: `cel::Context::default()` builds it anew each time,
/// which costs more than the whole request otherwise (measured: 100 µs a request).
static ENV: std::sync::LazyLock<Arc<cel::Env>> =
    std::sync::LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// Runs a cost expression over `usage`: a non-negative integer, else 0 (logged as `what`).
pub fn run_cel(cel: &Cel, what: &str, usage: &Usage, vars: &Vars<'_>) -> u64 {
    use cel::Value;
    let mut context = cel::Context::with_env(ENV.clone());
    let text = |s: &str| Value::String(Arc::new(s.to_owned()));
    for name in &cel.reads {
        let value = match *name {
            "model" => text(vars.model),
            "backend" => text(vars.backend),
            "route_name" => text(vars.route),
            "input_tokens" => Value::UInt(usage.input),
            "cached_input_tokens" => Value::UInt(usage.cached_input),
            "cache_creation_input_tokens" => Value::UInt(usage.cache_creation_input),
            "output_tokens" => Value::UInt(usage.output),
            "total_tokens" => Value::UInt(usage.total()),
            _ => Value::UInt(usage.reasoning),
        };
        context.add_variable_from_value(*name, value);
    }
    match cel.program.execute(&context) {
        Ok(Value::UInt(n)) => n,
        Ok(Value::Int(n)) if n >= 0 => n.cast_unsigned(),
        Ok(other) => {
            tracing::warn!(cost = what, value = ?other, "a CEL cost gave no non-negative integer; 0 counted");
            0
        }
        Err(error) => {
            tracing::warn!(cost = what, %error, "a CEL cost failed; 0 counted");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(kind: &str, cel: Option<&str>) -> Cost {
        let wire = RequestCost {
            metadata_key: "k".into(),
            kind: kind.into(),
            cel: cel.map(str::to_owned),
        };
        compile("default/r", &wire).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn each_cost_type_reads_its_count_and_cel_sees_every_variable() {
        let usage = Usage {
            input: 100,
            output: 40,
            cached_input: 30,
            cache_creation_input: 20,
            reasoning: 10,
            total: None,
        };
        let vars = Vars {
            model: "gpt-4o",
            backend: "default/openai",
            route: "default/chat",
        };
        let of = |kind, cel| cost(kind, cel).value(&usage, &vars);
        assert_eq!(of("InputToken", None), 100);
        assert_eq!(of("CachedInputToken", None), 30);
        assert_eq!(of("CacheCreationInputToken", None), 20);
        assert_eq!(of("OutputToken", None), 40);
        assert_eq!(of("ReasoningToken", None), 10);
        assert_eq!(of("TotalToken", None), 140);
        let weighted = "model == 'gpt-4o' && backend == 'default/openai' && route_name == 'default/chat' ? (input_tokens - cached_input_tokens) + cached_input_tokens / 10u + output_tokens * 4u + reasoning_tokens + cache_creation_input_tokens + total_tokens : 0u";
        assert_eq!(of("CEL", Some(weighted)), 70 + 3 + 160 + 10 + 20 + 140);
        assert_eq!(
            of("CEL", Some("int(input_tokens) - 1000")),
            0,
            "negative: 0"
        );
        assert_eq!(of("CEL", Some("no_such_variable + 1u")), 0, "failed: 0");
        let bad = RequestCost {
            metadata_key: "k".into(),
            kind: "CEL".into(),
            cel: Some("1 +".into()),
        };
        assert!(compile("default/r", &bad).is_err());
    }
}
