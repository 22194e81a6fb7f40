//! Workers KV as the runtime hands it over: the three calls the gate makes on the sessions'
//! namespace. Not `worker::KvStore`, which looks its methods up on every use, builds each
//! call's options through serde-wasm-bindgen, and writes a `String` through serde-wasm-bindgen
//! too (its `put` takes any `Serialize`): 11 KB of the wasm.

use worker::js_sys::{self, Promise};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding.
    pub type KvNamespace;
    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_text(this: &KvNamespace, key: &str, options: &JsValue) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = put)]
    fn put_text(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &JsValue,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;
}

/// What a KV call failed with, as text.
pub type KvError = String;

fn error(e: JsValue) -> KvError {
    worker::Error::from(e).to_string()
}

/// `{name: number}` as the options object of a call.
fn options(name: &str, number: Option<f64>) -> Result<JsValue, KvError> {
    let Some(number) = number else {
        return Ok(JsValue::UNDEFINED);
    };
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &name.into(), &number.into()).map_err(error)?;
    Ok(options.into())
}

impl KvNamespace {
    /// The binding `name` of `env`, or why there is none.
    pub fn bound(env: &worker::Env, name: &str) -> Result<KvNamespace, KvError> {
        let binding = js_sys::Reflect::get(env, &name.into()).unwrap_or_default();
        if binding.is_object() {
            Ok(binding.unchecked_into())
        } else {
            Err(format!("KV binding {name} is not bound"))
        }
    }

    /// The options of a read: `{cacheTtl}` when there is one.
    pub fn read_options(cache_ttl: Option<u32>) -> Result<JsValue, KvError> {
        options("cacheTtl", cache_ttl.map(f64::from))
    }

    /// The value at `key` as text, or `None`; cached at the edge `cache_ttl` seconds if set.
    pub async fn get(&self, key: &str, cache_ttl: Option<u32>) -> Result<Option<String>, KvError> {
        let read = self
            .get_text(key, &Self::read_options(cache_ttl)?)
            .map_err(error)?;
        Ok(JsFuture::from(read).await.map_err(error)?.as_string())
    }

    /// Writes `value` at `key`, to expire `ttl_seconds` after (none: never).
    pub async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), KvError> {
        let options = options("expirationTtl", ttl_seconds.map(|s| s as f64))?;
        let write = self.put_text(key, value, &options).map_err(error)?;
        JsFuture::from(write).await.map_err(error)?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let delete = self.delete_key(key).map_err(error)?;
        JsFuture::from(delete).await.map_err(error)?;
        Ok(())
    }
}
