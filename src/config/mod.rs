pub mod app;
pub mod options;
