//! Reading the store: queries across the tiers ([`query`], with [`topk`]
//! for a sort with a limit), bars per symbol and bucket ([`aggregate`]), the
//! newest bars of a symbol from the catalog's materialised ones ([`bars`]), and
//! data quality ([`quality`]). Each adds methods to the
//! [`Engine`](crate::Engine) or takes one; the engine knows nothing of them.

pub mod aggregate;
pub mod bars;
pub mod quality;
pub mod query;
pub mod topk;
