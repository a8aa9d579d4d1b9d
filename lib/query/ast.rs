//! The SQL subset, parsed by `sqlparser` and lowered to a small tree of our own.
//!
//! Everything the engine does not support is refused here, with the
//! position and the name of the construct, so that later stages only see
//! what they can run.

use std::fmt;

use sqlparser::ast::{self as sql, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::error::Error as QueryError;

/// A line and column in the query text (1-based; 0 when unknown).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl PartialEq for Pos {
    /// Positions never make two expressions different.
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            Ok(())
        } else {
            write!(f, " at line {}, column {}", self.line, self.column)
        }
    }
}

fn pos_of(node: &impl Spanned) -> Pos {
    let s = node.span().start;
    Pos {
        line: s.line,
        column: s.column,
    }
}

/// `EXPLAIN` shows the plan; `EXPLAIN ANALYZE` also runs the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explain {
    Plan,
    Analyze,
}

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub explain: Option<Explain>,
    pub items: Vec<Item>,
    pub from: From,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u64>,
}

/// A select-list entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Wildcard,
    Expr { expr: Expr, alias: Option<String> },
}

/// What the query reads: a metric, or a table function over metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum From {
    Metric {
        name: String,
        pos: Pos,
    },
    Function {
        name: String,
        args: Vec<Lit>,
        pos: Pos,
    },
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A number as written (parsed when its column is known).
    Num(String),
    Str(String),
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Num(n) => f.write_str(n),
            Lit::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flip(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            c => c,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    /// Applies the operator to two ordered values.
    pub fn holds<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// An expression of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(String, Pos),
    Lit(Lit, Pos),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// A function call; `star` for `count(*)`.
    Call {
        name: String,
        args: Vec<Expr>,
        star: bool,
        pos: Pos,
    },
}

impl Expr {
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Column(_, p) | Expr::Lit(_, p) | Expr::Call { pos: p, .. } => *p,
            Expr::Cmp(_, a, _) | Expr::And(a, _) | Expr::Or(a, _) | Expr::Not(a) => a.pos(),
            Expr::In { expr, .. } => expr.pos(),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c, _) => f.write_str(c),
            Expr::Lit(l, _) => write!(f, "{l}"),
            Expr::Cmp(op, a, b) => write!(f, "{a} {} {b}", op.symbol()),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Not(a) => write!(f, "NOT {a}"),
            Expr::In {
                expr,
                list,
                negated,
            } => {
                write!(f, "{expr} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
            Expr::Call {
                name, args, star, ..
            } => {
                write!(f, "{name}(")?;
                if *star {
                    f.write_str("*")?;
                }
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn unsupported(what: impl fmt::Display, pos: Pos) -> QueryError {
    QueryError::Unsupported(format!("{what}{pos}"))
}

/// A column written `labels.x` reaches the label `x` even where a sample
/// column has that name (a label called `value` or `ts`).
pub const LABEL_PREFIX: &str = "labels.";

/// The most operators (AND, OR, comparisons, arithmetic) one query may
/// hold. sqlparser builds a chain `a AND b AND c …` without recursing, but
/// the tree it makes is as deep as the chain is long, and every later step
/// walks it recursively: 10,000 ANDs overflowed the stack. Far more than a
/// query needs (an `IN` list counts as one).
pub const MAX_OPERATORS: usize = 256;

/// How deeply expressions may nest. sqlparser recurses once per level and
/// its frames are large in debug builds: this keeps a hostile query within
/// a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 24;

/// Parses one statement of the subset.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    if let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() {
        let operators = tokens
            .iter()
            .filter(|t| match t {
                Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
                Token::Eq
                | Token::Neq
                | Token::Lt
                | Token::Gt
                | Token::LtEq
                | Token::GtEq
                | Token::Plus
                | Token::Minus
                | Token::Mul
                | Token::Div
                | Token::Mod => true,
                _ => false,
            })
            .count();
        if operators > MAX_OPERATORS {
            return Err(QueryError::Syntax(format!(
                "the query holds {operators} operators, more than the {MAX_OPERATORS} one query may hold"
            )));
        }
    }
    let statements = Parser::new(&GenericDialect {})
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => {
                QueryError::Syntax("the query nests too deeply".into())
            }
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
                if m.contains("Line:") {
                    QueryError::Syntax(m)
                } else {
                    // sqlparser gives no position at the end of the input: add it.
                    let line = text.lines().count().max(1);
                    let column = text.lines().last().map_or(0, |l| l.chars().count()) + 1;
                    QueryError::Syntax(format!(
                        "{m} at the end of the query (Line: {line}, Column: {column})"
                    ))
                }
            }
        })?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(QueryError::Syntax("empty query".into())),
        _ => {
            return Err(QueryError::Unsupported(format!(
                "{} statements in one query; run them one at a time",
                statements.len()
            )))
        }
    };
    match statement {
        sql::Statement::Query(q) => lower_query(q, None),
        sql::Statement::Explain {
            analyze, statement, ..
        } => match statement.as_ref() {
            sql::Statement::Query(q) => lower_query(
                q,
                Some(if *analyze {
                    Explain::Analyze
                } else {
                    Explain::Plan
                }),
            ),
            _ => Err(QueryError::Unsupported(
                "EXPLAIN of anything but a SELECT".into(),
            )),
        },
        other => {
            let text = other.to_string();
            let word = text.split_whitespace().next().unwrap_or("this statement");
            Err(QueryError::Unsupported(format!(
                "{word} statements (the engine is read-only; only SELECT and EXPLAIN SELECT run)"
            )))
        }
    }
}

fn lower_query(q: &sql::Query, explain: Option<Explain>) -> Result<Query, QueryError> {
    if q.with.is_some() {
        return Err(unsupported("WITH (common table expressions)", pos_of(q)));
    }
    if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() {
        return Err(unsupported("FETCH, FOR or locking clauses", pos_of(q)));
    }
    let select = match q.body.as_ref() {
        sql::SetExpr::Select(s) => s,
        sql::SetExpr::Query(inner) => {
            return Err(unsupported(
                "a subquery in parentheses",
                pos_of(inner.as_ref()),
            ))
        }
        other => {
            return Err(unsupported(
                "UNION, INTERSECT, EXCEPT or VALUES",
                pos_of(other),
            ))
        }
    };
    let spos = pos_of(select.as_ref());
    if select.distinct.is_some() {
        return Err(unsupported("DISTINCT", spos));
    }
    if select.top.is_some() {
        return Err(unsupported("TOP", spos));
    }
    if select.having.is_some() {
        return Err(unsupported("HAVING", spos));
    }
    if select.into.is_some() {
        return Err(unsupported("SELECT INTO", spos));
    }
    if select.qualify.is_some() || !select.named_window.is_empty() {
        return Err(unsupported("window clauses", spos));
    }
    if select.prewhere.is_some()
        || !select.lateral_views.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.connect_by.is_empty()
    {
        return Err(unsupported("dialect-specific SELECT clauses", spos));
    }
    let from = match select.from.as_slice() {
        [] => return Err(QueryError::Syntax(format!("missing FROM{spos}"))),
        [one] => lower_from(one)?,
        [_, second, ..] => {
            return Err(unsupported(
                "more than one table in FROM (use asof_join(...) to combine series)",
                pos_of(&second.relation),
            ))
        }
    };
    let mut items = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        items.push(match item {
            sql::SelectItem::Wildcard(_) => Item::Wildcard,
            sql::SelectItem::UnnamedExpr(e) => Item::Expr {
                expr: lower_expr(e)?,
                alias: None,
            },
            sql::SelectItem::ExprWithAlias { expr, alias } => Item::Expr {
                expr: lower_expr(expr)?,
                alias: Some(alias.value.clone()),
            },
            other => return Err(unsupported("this select item", pos_of(other))),
        });
    }
    let filter = select.selection.as_ref().map(lower_expr).transpose()?;
    let group_by = match &select.group_by {
        sql::GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported("GROUP BY modifiers (ROLLUP, CUBE, ...)", spos));
            }
            exprs.iter().map(lower_expr).collect::<Result<_, _>>()?
        }
        sql::GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL", spos)),
    };
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        match &ob.kind {
            sql::OrderByKind::Expressions(list) => {
                for o in list {
                    if o.with_fill.is_some() || o.options.nulls_first.is_some() {
                        return Err(unsupported("NULLS FIRST/LAST or WITH FILL", pos_of(o)));
                    }
                    let desc = match &o.options.sort {
                        None | Some(sql::OrderBySort::Asc) => false,
                        Some(sql::OrderBySort::Desc) => true,
                        Some(sql::OrderBySort::Using(_)) => {
                            return Err(unsupported("ORDER BY ... USING", pos_of(o)))
                        }
                    };
                    order_by.push((lower_expr(&o.expr)?, desc));
                }
            }
            sql::OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL", spos)),
        }
    }
    let limit = match &q.limit_clause {
        None => None,
        Some(sql::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if offset.is_some() {
                return Err(unsupported("OFFSET", spos));
            }
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY", spos));
            }
            match limit {
                None => None,
                Some(e) => Some(lower_limit(e)?),
            }
        }
        Some(sql::LimitClause::OffsetCommaLimit { .. }) => {
            return Err(unsupported("LIMIT offset, count", spos))
        }
    };
    Ok(Query {
        explain,
        items,
        from,
        filter,
        group_by,
        order_by,
        limit,
    })
}

fn lower_limit(e: &sql::Expr) -> Result<u64, QueryError> {
    match e {
        sql::Expr::Value(v) => match &v.value {
            sql::Value::Number(n, _) => n.parse::<u64>().map_err(|_| {
                QueryError::Syntax(format!(
                    "LIMIT {n}{}: expected a whole number of rows",
                    pos_of(e)
                ))
            }),
            _ => Err(QueryError::Syntax(format!(
                "LIMIT{}: expected a number",
                pos_of(e)
            ))),
        },
        _ => Err(unsupported("a LIMIT that is not a number", pos_of(e))),
    }
}

fn object_name(name: &sql::ObjectName) -> Result<String, QueryError> {
    match name.0.as_slice() {
        [sql::ObjectNamePart::Identifier(id)] => Ok(id.value.clone()),
        _ => Err(unsupported(
            format!(
                "qualified name {name} (double-quote a metric name that contains dots: \"{name}\")"
            ),
            pos_of(name),
        )),
    }
}

fn lower_from(t: &sql::TableWithJoins) -> Result<From, QueryError> {
    if let Some(j) = t.joins.first() {
        return Err(unsupported(
            "JOIN (use asof_join(left, right, tolerance) to combine series)",
            pos_of(&j.relation),
        ));
    }
    let pos = pos_of(&t.relation);
    match &t.relation {
        sql::TableFactor::Table { name, args, .. } => {
            let name = object_name(name)?;
            match args {
                None => Ok(From::Metric { name, pos }),
                Some(a) => {
                    let mut args = Vec::with_capacity(a.args.len());
                    for arg in &a.args {
                        args.push(lower_table_arg(arg)?);
                    }
                    Ok(From::Function {
                        name: name.to_ascii_lowercase(),
                        args,
                        pos,
                    })
                }
            }
        }
        sql::TableFactor::Function { .. } | sql::TableFactor::TableFunction { .. } => {
            Err(unsupported("this form of table function", pos))
        }
        _ => Err(unsupported("subqueries and derived tables in FROM", pos)),
    }
}

fn lower_table_arg(arg: &sql::FunctionArg) -> Result<Lit, QueryError> {
    let e = match arg {
        sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => e,
        _ => {
            return Err(unsupported(
                "named or wildcard table-function arguments",
                pos_of(arg),
            ))
        }
    };
    match lower_expr(e)? {
        Expr::Lit(l, _) => Ok(l),
        // An unquoted metric name reads as a column: take it as its name.
        Expr::Column(c, _) => Ok(Lit::Str(c)),
        other => Err(unsupported(
            format!("table-function argument {other} (use a literal)"),
            pos_of(e),
        )),
    }
}

fn lower_expr(e: &sql::Expr) -> Result<Expr, QueryError> {
    let pos = pos_of(e);
    Ok(match e {
        sql::Expr::Identifier(id) => Expr::Column(id.value.clone(), pos),
        sql::Expr::CompoundIdentifier(ids) => match ids.as_slice() {
            // `labels.x` is the label x, also where x is a sample column's
            // name (`labels.value`); any other qualifier is the table's.
            [q, col] if q.value.eq_ignore_ascii_case("labels") => {
                Expr::Column(format!("{LABEL_PREFIX}{}", col.value), pos)
            }
            [_, col] => Expr::Column(col.value.clone(), pos),
            _ => return Err(unsupported(format!("column {e}"), pos)),
        },
        sql::Expr::Value(v) => match &v.value {
            sql::Value::Number(n, _) => Expr::Lit(Lit::Num(n.clone()), pos),
            sql::Value::SingleQuotedString(s) => Expr::Lit(Lit::Str(s.clone()), pos),
            other => return Err(unsupported(format!("literal {other}"), pos)),
        },
        sql::Expr::Nested(inner) => lower_expr(inner)?,
        sql::Expr::UnaryOp { op, expr } => match op {
            sql::UnaryOperator::Not => Expr::Not(Box::new(lower_expr(expr)?)),
            sql::UnaryOperator::Minus => match lower_expr(expr)? {
                Expr::Lit(Lit::Num(n), p) => {
                    let n = match n.strip_prefix('-') {
                        Some(pos) => pos.to_string(),
                        None => format!("-{n}"),
                    };
                    Expr::Lit(Lit::Num(n), p)
                }
                other => return Err(unsupported(format!("arithmetic (-{other})"), pos)),
            },
            sql::UnaryOperator::Plus => lower_expr(expr)?,
            other => return Err(unsupported(format!("operator {other}"), pos)),
        },
        sql::Expr::BinaryOp { left, op, right } => {
            let (l, r) = (Box::new(lower_expr(left)?), Box::new(lower_expr(right)?));
            match op {
                sql::BinaryOperator::And => Expr::And(l, r),
                sql::BinaryOperator::Or => Expr::Or(l, r),
                sql::BinaryOperator::Eq => Expr::Cmp(Cmp::Eq, l, r),
                sql::BinaryOperator::NotEq => Expr::Cmp(Cmp::Ne, l, r),
                sql::BinaryOperator::Lt => Expr::Cmp(Cmp::Lt, l, r),
                sql::BinaryOperator::LtEq => Expr::Cmp(Cmp::Le, l, r),
                sql::BinaryOperator::Gt => Expr::Cmp(Cmp::Gt, l, r),
                sql::BinaryOperator::GtEq => Expr::Cmp(Cmp::Ge, l, r),
                other => return Err(unsupported(format!("operator {other}"), pos)),
            }
        }
        sql::Expr::In {
            expr,
            target,
            negated,
            ..
        } => match target {
            sql::InTarget::List(list) => Expr::In {
                expr: Box::new(lower_expr(expr)?),
                list: list.iter().map(lower_expr).collect::<Result<_, _>>()?,
                negated: *negated,
            },
            _ => return Err(unsupported("IN with a subquery or table", pos)),
        },
        sql::Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = lower_expr(expr)?;
            let range = Expr::And(
                Box::new(Expr::Cmp(
                    Cmp::Ge,
                    Box::new(x.clone()),
                    Box::new(lower_expr(low)?),
                )),
                Box::new(Expr::Cmp(Cmp::Le, Box::new(x), Box::new(lower_expr(high)?))),
            );
            if *negated {
                Expr::Not(Box::new(range))
            } else {
                range
            }
        }
        sql::Expr::Function(f) => lower_call(f, pos)?,
        sql::Expr::Wildcard(_) => Expr::Column("*".into(), pos),
        sql::Expr::Subquery(_) | sql::Expr::Exists { .. } => {
            return Err(unsupported("subqueries", pos))
        }
        other => {
            let text = other.to_string();
            let short: String = text.chars().take(40).collect();
            return Err(unsupported(format!("expression `{short}`"), pos));
        }
    })
}

fn lower_call(f: &sql::Function, pos: Pos) -> Result<Expr, QueryError> {
    let name = object_name(&f.name)?.to_ascii_lowercase();
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err(unsupported(
            format!("FILTER, OVER or WITHIN GROUP on {name}()"),
            pos,
        ));
    }
    if !matches!(f.parameters, sql::FunctionArguments::None) {
        return Err(unsupported(format!("parameters of {name}()"), pos));
    }
    let mut args = Vec::new();
    let mut star = false;
    match &f.args {
        sql::FunctionArguments::None => {}
        sql::FunctionArguments::Subquery(_) => return Err(unsupported("subqueries", pos)),
        sql::FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                return Err(unsupported(
                    format!("DISTINCT, ORDER BY or other clauses inside {name}()"),
                    pos,
                ));
            }
            for a in &list.args {
                match a {
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => {
                        args.push(lower_expr(e)?)
                    }
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Wildcard) => star = true,
                    other => {
                        return Err(unsupported(
                            format!("argument {other} of {name}()"),
                            pos_of(other),
                        ))
                    }
                }
            }
        }
    }
    Ok(Expr::Call {
        name,
        args,
        star,
        pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_example_of_the_issue() {
        let q = parse(
            "SELECT time_bucket('5m', ts) AS t, host, avg(value), max(value) FROM cpu_usage \
             WHERE region = 'eu' AND ts >= '2024-01-01T00:00:00Z' AND value > 50 \
             GROUP BY t, host ORDER BY t DESC LIMIT 100",
        )
        .unwrap();
        assert_eq!(q.items.len(), 4);
        assert_eq!(
            q.from,
            From::Metric {
                name: "cpu_usage".into(),
                pos: Pos::default()
            }
        );
        assert_eq!(q.group_by.len(), 2);
        assert!(q.order_by[0].1, "DESC");
        assert_eq!(q.limit, Some(100));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        for (text, word) in [
            ("SELECT DISTINCT host FROM cpu", "DISTINCT"),
            ("SELECT * FROM a JOIN b ON a.x = b.x", "JOIN"),
            ("SELECT * FROM cpu LIMIT 5 OFFSET 2", "OFFSET"),
            ("DELETE FROM cpu", "DELETE"),
            ("SELECT value + 1 FROM cpu", "operator +"),
            ("SELECT * FROM (SELECT * FROM cpu)", "subqueries"),
            (
                "SELECT host FROM cpu GROUP BY host HAVING count(*) > 1",
                "HAVING",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(word), "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let e = parse("SELECT * FROM cpu WHERE").unwrap_err().to_string();
        assert!(e.contains("Line: 1"), "{e}");
        let e = parse("SELECT * FORM cpu").unwrap_err().to_string();
        assert!(e.contains("Column"), "{e}");
    }

    #[test]
    fn between_and_negative_numbers_lower_to_comparisons() {
        let q = parse("SELECT * FROM cpu WHERE value BETWEEN -1 AND 5").unwrap();
        assert_eq!(
            q.filter.unwrap().to_string(),
            "(value >= -1 AND value <= 5)"
        );
    }
}
