//! nslab's account of a run and what is made from it.
//!
//! A run says what happened as [`account::Event`]s into a [`account::Journal`]; the
//! [`console::Console`] says the same on the terminal (text, or JSON lines); the verdict, the
//! JUnit file, the HTML report and the lab's graph are all made from the journal. The outputs
//! the operator names are written by [`output`], which never follows a link, never replaces a
//! device, and writes as the operator.

pub mod account;
pub mod console;
pub mod output;
