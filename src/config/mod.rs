pub mod js;
pub mod js_prelude;
pub mod load;
pub mod load_node;
