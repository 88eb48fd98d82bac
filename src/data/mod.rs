//! Data sets: a whole data set in memory and writing it to the store ([`dataset`]), the demo
//! catalogue seeded into an empty embedded database ([`demo`]), the MovieLens importer
//! ([`movielens`]), benchmark-scale synthetic worlds ([`synthetic`]), the generated implicit-feedback
//! feed `reco evaluate world` scores on ([`implicit`]), and import from and export to files and
//! other databases ([`transfer`]). None of this runs on the request path.

pub mod dataset;
pub mod demo;
pub mod implicit;
pub mod movielens;
pub mod synthetic;
pub mod transfer;

pub use dataset::Dataset;
