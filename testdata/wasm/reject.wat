;; A proxy-wasm 0.2.1 module that answers a request itself: one with an `x-block` header gets
;; 403 `blocked by policy` (text/plain), as `proxy_send_local_response` sends it; the module
;; then pauses the request, as the SDKs do after a local response.
(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 100) "x-block")
  (data (i32.const 120) "blocked by policy")
  ;; One header pair in the ABI's encoding: count 1, sizes 12 and 10, then the NUL-ended strings.
  (data (i32.const 200) "\01\00\00\00\0c\00\00\00\0a\00\00\00content-type\00text/plain\00")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 0) (i32.const 4)))
      (then
        (drop (call $respond (i32.const 403) (i32.const 0) (i32.const 0)
          (i32.const 120) (i32.const 17) (i32.const 200) (i32.const 36) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0)))
