//! The `env` functions of the proxy-wasm 0.2.1 ABI that aigw gives a module: logging, the
//! request's and answer's header maps, local responses, the plugin configuration; and the
//! ABI's memory conventions (values copied into memory the module allocates itself,
//! `proxy_on_memory_allocate` else `malloc`; header pairs in the ABI's encoding).

use super::{Local, State};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::{Caller, Extern, Linker};

const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const BAD_ARGUMENT: i32 = 2;
const INVALID_MEMORY_ACCESS: i32 = 6;
const REQUEST_HEADERS: i32 = 0;
const RESPONSE_HEADERS: i32 = 2;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;
const ROOT: i32 = 1;
const HTTP: i32 = 2;

type Cx<'a> = Caller<'a, State>;

fn memory(caller: &mut Cx<'_>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

fn read(caller: &mut Cx<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = memory(caller)?;
    let mut out = vec![0; usize::try_from(len).ok()?];
    memory
        .read(&*caller, usize::try_from(ptr).ok()?, &mut out)
        .ok()?;
    Some(out)
}

fn read_string(caller: &mut Cx<'_>, ptr: i32, len: i32) -> Option<String> {
    String::from_utf8(read(caller, ptr, len)?).ok()
}

fn write_u32(caller: &mut Cx<'_>, at: i32, value: u32) -> Option<()> {
    let memory = memory(caller)?;
    memory
        .write(
            &mut *caller,
            usize::try_from(at).ok()?,
            &value.to_le_bytes(),
        )
        .ok()
}

/// `bytes` copied into memory the module allocates, its address and size written at
/// `ret_ptr` and `ret_size`.
fn give(caller: &mut Cx<'_>, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> wasmtime::Result<i32> {
    let allocate = caller
        .get_export("proxy_on_memory_allocate")
        .or_else(|| caller.get_export("malloc"))
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::Error::msg("the module exports no allocator"))?;
    let ptr = allocate
        .typed::<i32, i32>(&*caller)?
        .call(&mut *caller, bytes.len() as i32)?;
    if ptr == 0 && !bytes.is_empty() {
        return Ok(INVALID_MEMORY_ACCESS);
    }
    let Some(memory) = memory(caller) else {
        return Ok(INVALID_MEMORY_ACCESS);
    };
    let written = usize::try_from(ptr)
        .ok()
        .and_then(|at| memory.write(&mut *caller, at, bytes).ok());
    if written.is_none()
        || write_u32(caller, ret_ptr, ptr as u32).is_none()
        || write_u32(caller, ret_size, bytes.len() as u32).is_none()
    {
        return Ok(INVALID_MEMORY_ACCESS);
    }
    Ok(OK)
}

fn map(state: &mut State, map_type: i32) -> Option<&mut HeaderMap> {
    match map_type {
        REQUEST_HEADERS => Some(&mut state.request),
        RESPONSE_HEADERS => Some(&mut state.response),
        _ => None,
    }
}

/// The proxy-wasm pairs encoding: count, (key length, value length) each, then each key and
/// value followed by a NUL.
fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if bytes.len() < 4 {
        return Some(Vec::new());
    }
    let count = u32_at(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        sizes.push((u32_at(4 + i * 8)?, u32_at(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(sizes.len());
    for (k, v) in sizes {
        let key = String::from_utf8(bytes.get(at..at + k)?.to_vec()).ok()?;
        at += k + 1;
        let value = String::from_utf8(bytes.get(at..at + v)?.to_vec()).ok()?;
        at += v + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

fn pairs_of(state: &State, map_type: i32) -> Vec<(String, String)> {
    let headers = match map_type {
        REQUEST_HEADERS => &state.request,
        RESPONSE_HEADERS => &state.response,
        _ => return Vec::new(),
    };
    let pseudo = if map_type == REQUEST_HEADERS {
        state.pseudo.as_slice()
    } else {
        &[]
    };
    pseudo
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .chain(
            headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))),
        )
        .collect()
}

pub(super) fn imports(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut caller: Cx<'_>, level: i32, ptr: i32, len: i32| -> i32 {
            let message = read_string(&mut caller, ptr, len).unwrap_or_default();
            let module = caller.data().name.as_str();
            match level {
                0 | 1 => tracing::debug!(target: "aigw::wasm", %module, "{message}"),
                2 => tracing::info!(target: "aigw::wasm", %module, "{message}"),
                3 => tracing::warn!(target: "aigw::wasm", %module, "{message}"),
                _ => tracing::error!(target: "aigw::wasm", %module, "{message}"),
            }
            OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut caller: Cx<'_>, ret: i32| -> i32 {
            // INFO: what the gateway logs by default.
            write_u32(&mut caller, ret, 2).map_or(INVALID_MEMORY_ACCESS, |()| OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: Cx<'_>, map_type: i32, ret_ptr: i32, ret_size: i32| -> wasmtime::Result<i32> {
            let bytes = encode_pairs(&pairs_of(caller.data(), map_type));
            give(&mut caller, &bytes, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut caller: Cx<'_>, map_type: i32, ret: i32| -> i32 {
            let size = encode_pairs(&pairs_of(caller.data(), map_type)).len() as u32;
            write_u32(&mut caller, ret, size).map_or(INVALID_MEMORY_ACCESS, |()| OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: Cx<'_>,
         map_type: i32,
         key_ptr: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> wasmtime::Result<i32> {
            let Some(key) = read_string(&mut caller, key_ptr, key_len) else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            let key = key.to_ascii_lowercase();
            let value = pairs_of(caller.data(), map_type)
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v);
            match value {
                Some(value) => give(&mut caller, value.as_bytes(), ret_ptr, ret_size),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    for (name, replace) in [
        ("proxy_add_header_map_value", false),
        ("proxy_replace_header_map_value", true),
    ] {
        linker.func_wrap(
            "env",
            name,
            move |mut caller: Cx<'_>,
                  map_type: i32,
                  key_ptr: i32,
                  key_len: i32,
                  value_ptr: i32,
                  value_len: i32|
                  -> i32 {
                let (Some(key), Some(value)) = (
                    read(&mut caller, key_ptr, key_len),
                    read(&mut caller, value_ptr, value_len),
                ) else {
                    return INVALID_MEMORY_ACCESS;
                };
                let (Ok(key), Ok(value)) = (
                    HeaderName::from_bytes(&key),
                    HeaderValue::from_bytes(&value),
                ) else {
                    return BAD_ARGUMENT;
                };
                let Some(headers) = map(caller.data_mut(), map_type) else {
                    return BAD_ARGUMENT;
                };
                if replace {
                    headers.insert(key, value);
                } else {
                    headers.append(key, value);
                }
                OK
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: Cx<'_>, map_type: i32, key_ptr: i32, key_len: i32| -> i32 {
            let Some(key) = read(&mut caller, key_ptr, key_len) else {
                return INVALID_MEMORY_ACCESS;
            };
            let Ok(key) = HeaderName::from_bytes(&key) else {
                return BAD_ARGUMENT;
            };
            match map(caller.data_mut(), map_type) {
                Some(headers) => {
                    headers.remove(key);
                    OK
                }
                None => BAD_ARGUMENT,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: Cx<'_>, map_type: i32, ptr: i32, len: i32| -> i32 {
            let Some(pairs) = read(&mut caller, ptr, len).and_then(|b| decode_pairs(&b)) else {
                return INVALID_MEMORY_ACCESS;
            };
            let Some(headers) = map(caller.data_mut(), map_type) else {
                return BAD_ARGUMENT;
            };
            headers.clear();
            for (k, v) in pairs {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    headers.append(k, v);
                }
            }
            OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: Cx<'_>,
         status: i32,
         _details_ptr: i32,
         _details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         _grpc_status: i32|
         -> i32 {
            let (Some(body), Some(headers)) = (
                read(&mut caller, body_ptr, body_len),
                read(&mut caller, headers_ptr, headers_len).and_then(|b| decode_pairs(&b)),
            ) else {
                return INVALID_MEMORY_ACCESS;
            };
            let Ok(status) = u16::try_from(status) else {
                return BAD_ARGUMENT;
            };
            caller.data_mut().local = Some(Local {
                status,
                body,
                headers,
            });
            OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: Cx<'_>,
         buffer: i32,
         start: i32,
         max: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> wasmtime::Result<i32> {
            let data = match buffer {
                PLUGIN_CONFIGURATION => caller.data().config.clone(),
                VM_CONFIGURATION => Bytes::new(),
                _ => return Ok(NOT_FOUND),
            };
            let start = usize::try_from(start).unwrap_or(0).min(data.len());
            let end = start
                .saturating_add(usize::try_from(max).unwrap_or(0))
                .min(data.len());
            give(&mut caller, &data[start..end], ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |_: Cx<'_>, id: i32| -> i32 {
            if id == ROOT || id == HTTP {
                OK
            } else {
                BAD_ARGUMENT
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |_: Cx<'_>, _: i32, _: i32, _: i32, _: i32| -> i32 { NOT_FOUND },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: Cx<'_>, ret: i32| -> i32 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let Some(memory) = memory(&mut caller) else {
                return INVALID_MEMORY_ACCESS;
            };
            let Ok(at) = usize::try_from(ret) else {
                return INVALID_MEMORY_ACCESS;
            };
            memory
                .write(&mut caller, at, &now.to_le_bytes())
                .map_or(INVALID_MEMORY_ACCESS, |()| OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |_: Cx<'_>, _: i32| -> i32 { OK },
    )?;
    linker.func_wrap("env", "proxy_done", |_: Cx<'_>| -> i32 { OK })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_encode_as_the_abi_says_and_read_back() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("bc".to_owned(), String::new()),
        ];
        let bytes = encode_pairs(&pairs);
        assert_eq!(
            bytes,
            [
                2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'a', 0, b'1', 0, b'b',
                b'c', 0, 0
            ]
        );
        assert_eq!(decode_pairs(&bytes), Some(pairs));
        assert_eq!(decode_pairs(&[]), Some(Vec::new()));
        assert_eq!(
            decode_pairs(&[9, 0, 0, 0]),
            None,
            "a count the bytes do not hold"
        );
    }
}
