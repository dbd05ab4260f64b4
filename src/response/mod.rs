//! Response: what happens after detection (alerts -> incidents -> playbooks
//! that email and page). `notify` is the delivery layer.

pub mod notify;
