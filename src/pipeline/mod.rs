pub mod silence;
