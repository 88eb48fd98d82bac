//! Integration tests: the real server on a random port, on real SQLite files and a real PostgreSQL.
//! One binary (faster to link); each module covers one concern.

mod architecture;
mod auth;
mod bad_input;
mod cli;
mod cluster;
mod converge;
mod dashboard;
mod diagnose;
mod engines;
mod faults;
mod feed;
mod feedback;
mod helpers;
mod membership;
mod monitor;
mod movielens;
mod openapi;
mod orchestrator;
mod pool;
mod quality;
mod replicas;
mod reset;
mod routes;
mod servers;
mod stall;
mod transfer;
