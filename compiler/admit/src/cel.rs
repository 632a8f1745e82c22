//! Static checking of cost expressions (AIGatewayRoute `llmRequestCosts`, GatewayConfig
//! `globalLLMRequestCosts`, QuotaPolicy `costExpression`).
//!
//! The `cel` crate parses; it has no type checker, so this module is one for the subset a cost
//! expression can use: the declared variables, literals, arithmetic, comparisons, logic, the
//! conditional, the conversions `int`/`uint`/`double`/`string`, `size` and the string tests.
//! Typing follows the CEL spec as cel-go applies it: arithmetic needs operands of one numeric
//! type (`input_tokens + 1` is an error, `input_tokens + 1u` is not), comparisons may mix numeric
//! types, and both branches of `?:` must agree. The reference admits any string here and fails
//! at reconcile; we refuse it at compile time with the expression's position.

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::parser::Parser;

/// A CEL type of the subset we check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    UInt,
    Double,
    String,
    Bool,
    Null,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::UInt => "uint",
            Type::Double => "double",
            Type::String => "string",
            Type::Bool => "bool",
            Type::Null => "null",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::UInt | Type::Double)
    }
}

/// The variables a cost expression may use, with their types.
pub const COST_VARIABLES: &[(&str, Type)] = &[
    ("model", Type::String),
    ("backend", Type::String),
    ("route_name", Type::String),
    ("input_tokens", Type::UInt),
    ("cached_input_tokens", Type::UInt),
    ("cache_creation_input_tokens", Type::UInt),
    ("output_tokens", Type::UInt),
    ("total_tokens", Type::UInt),
    ("reasoning_tokens", Type::UInt),
];

/// A problem in an expression: what, and the byte range within the expression text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CelError {
    pub syntax: bool,
    pub message: String,
    pub start: usize,
    pub end: usize,
}

/// Parses and type-checks a cost expression; it must yield `int` or `uint`.
pub fn check_cost_expression(source: &str) -> Result<Type, CelError> {
    let (expr, info) = Parser::new()
        .parse_with_source_info(source)
        .map_err(|errors| {
            let first = errors.errors.first();
            let message = first.map_or_else(|| "cannot parse".to_owned(), |e| e.msg.clone());
            let start = first.map_or(0, |e| line_col_to_offset(source, e.pos));
            CelError {
                syntax: true,
                message,
                start,
                end: (start + 1).min(source.len()),
            }
        })?;
    let checker = Checker {
        info: &info,
        source,
    };
    let ty = checker.check(&expr)?;
    match ty {
        Type::Int | Type::UInt => Ok(ty),
        other => Err(checker.error(
            &expr,
            format!(
                "a cost expression must yield an integer (int or uint), this one yields {}",
                other.name()
            ),
        )),
    }
}

fn line_col_to_offset(source: &str, (line, column): (isize, isize)) -> usize {
    let mut offset = 0;
    for (i, text) in source.split_inclusive('\n').enumerate() {
        if i as isize + 1 == line {
            return (offset + column.max(0) as usize).min(source.len());
        }
        offset += text.len();
    }
    0
}

struct Checker<'a> {
    info: &'a cel::common::ast::SourceInfo,
    source: &'a str,
}

impl Checker<'_> {
    fn error(&self, expr: &IdedExpr, message: String) -> CelError {
        let (start, end) = self
            .info
            .offset_for(expr.id)
            .unwrap_or((0, self.source.len() as u32));
        // The parser reports an inclusive stop offset.
        let end = (end as usize + 1)
            .max(start as usize + 1)
            .min(self.source.len());
        CelError {
            syntax: false,
            message,
            start: start as usize,
            end,
        }
    }

    fn check(&self, expr: &IdedExpr) -> Result<Type, CelError> {
        match &expr.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Type::Bool,
                LiteralValue::Int(_) => Type::Int,
                LiteralValue::UInt(_) => Type::UInt,
                LiteralValue::Double(_) => Type::Double,
                LiteralValue::String(_) => Type::String,
                LiteralValue::Null => Type::Null,
                LiteralValue::Bytes(_) => {
                    return Err(
                        self.error(expr, "bytes are not supported in a cost expression".into())
                    );
                }
            }),
            Expr::Ident(name) => COST_VARIABLES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| self.undeclared(expr, name)),
            Expr::Call(call) => {
                self.check_call(expr, &call.func_name, call.target.as_deref(), &call.args)
            }
            Expr::Select(select) => Err(self.error(
                expr,
                format!(
                    "field selection `.{}` is not supported: the variables are scalars",
                    select.field
                ),
            )),
            _ => Err(self.error(
                expr,
                "lists, maps, messages and macros are not supported in a cost expression".into(),
            )),
        }
    }

    fn undeclared(&self, expr: &IdedExpr, name: &str) -> CelError {
        let names = COST_VARIABLES.iter().map(|(n, _)| *n);
        let hint = match aigw_syntax::closest(name, names) {
            Some(close) => format!(" (did you mean `{close}`?)"),
            None => String::new(),
        };
        let declared = COST_VARIABLES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ");
        self.error(
            expr,
            format!("undeclared reference to `{name}`{hint}; declared variables: {declared}"),
        )
    }

    fn check_call(
        &self,
        expr: &IdedExpr,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<Type, CelError> {
        let types = args
            .iter()
            .map(|a| self.check(a))
            .collect::<Result<Vec<_>, _>>()?;
        let target_type = target.map(|t| self.check(t)).transpose()?;
        let no_overload =
            |what: String| Err(self.error(expr, format!("found no matching overload for {what}")));
        let signature = || {
            format!(
                "`{}` applied to ({})",
                name.trim_matches('_'),
                types
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match (name, target_type, types.as_slice()) {
            ("_+_", None, [a, b]) if a == b && (a.is_numeric() || *a == Type::String) => Ok(*a),
            ("_-_" | "_*_" | "_/_", None, [a, b]) if a == b && a.is_numeric() => Ok(*a),
            ("_%_", None, [a, b]) if a == b && matches!(a, Type::Int | Type::UInt) => Ok(*a),
            ("-_", None, [a]) if matches!(a, Type::Int | Type::Double) => Ok(*a),
            ("_==_" | "_!=_", None, [a, b]) if a == b || (a.is_numeric() && b.is_numeric()) => {
                Ok(Type::Bool)
            }
            ("_<_" | "_<=_" | "_>_" | "_>=_", None, [a, b])
                if (a == b && *a != Type::Null && *a != Type::Bool)
                    || (a.is_numeric() && b.is_numeric()) =>
            {
                Ok(Type::Bool)
            }
            ("_&&_" | "_||_", None, [Type::Bool, Type::Bool]) => Ok(Type::Bool),
            ("!_", None, [Type::Bool]) => Ok(Type::Bool),
            ("_?_:_", None, [Type::Bool, a, b]) if a == b => Ok(*a),
            ("_?_:_", None, [Type::Bool, a, b]) => Err(self.error(
                expr,
                format!(
                    "the branches of `?:` must have one type, found {} and {}",
                    a.name(),
                    b.name()
                ),
            )),
            ("int", None, [a]) if a.is_numeric() || *a == Type::String => Ok(Type::Int),
            ("uint", None, [a]) if a.is_numeric() || *a == Type::String => Ok(Type::UInt),
            ("double", None, [a]) if a.is_numeric() || *a == Type::String => Ok(Type::Double),
            ("string", None, [_]) => Ok(Type::String),
            ("size", None, [Type::String]) | ("size", Some(Type::String), []) => Ok(Type::Int),
            (
                "contains" | "startsWith" | "endsWith" | "matches",
                Some(Type::String),
                [Type::String],
            ) => Ok(Type::Bool),
            ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", None, [a, b])
                if a.is_numeric() && b.is_numeric() =>
            {
                no_overload(format!(
                    "{}: CEL does not mix numeric types; convert one side, e.g. `{}(...)` or a `u` suffix on literals",
                    signature(),
                    a.name()
                ))
            }
            _ => no_overload(signature()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(src: &str, expected: Type) {
        assert_eq!(check_cost_expression(src), Ok(expected), "{src}");
    }

    #[track_caller]
    fn err(src: &str, needle: &str) -> CelError {
        let error = check_cost_expression(src).expect_err(src);
        assert!(error.message.contains(needle), "{src}: {}", error.message);
        error
    }

    #[test]
    fn integer_expressions_pass() {
        ok("input_tokens == uint(3) ? 100000000 : 0", Type::Int);
        ok(
            "input_tokens + cached_input_tokens * 2u + output_tokens",
            Type::UInt,
        );
        ok(
            "model == 'gpt-4o' ? total_tokens : uint(double(total_tokens) * 0.5)",
            Type::UInt,
        );
        ok(
            "backend.startsWith('aws') && size(route_name) > 3 ? 1 : 2",
            Type::Int,
        );
        ok("reasoning_tokens + cache_creation_input_tokens", Type::UInt);
    }

    #[test]
    fn undeclared_names_are_errors_with_a_hint_and_position() {
        let e = err(
            "input_token + output_tokens",
            "undeclared reference to `input_token`",
        );
        assert!(
            e.message.contains("did you mean `input_tokens`"),
            "{}",
            e.message
        );
        assert_eq!((e.start, e.end), (0, 11));
    }

    #[test]
    fn wrong_result_and_mixed_arithmetic_are_errors() {
        err("double(input_tokens) * 0.5", "must yield an integer");
        err("input_tokens * 0.5", "does not mix numeric types");
        err("input_tokens + 1", "does not mix numeric types");
        err("model", "yields string");
        err("true ? 1 : 1u", "must have one type");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let e = check_cost_expression("input_tokens +").expect_err("syntax");
        assert!(e.syntax);
    }
}
