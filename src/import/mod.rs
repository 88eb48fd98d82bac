//! Importers of public data sets into the store.

pub mod movielens;
