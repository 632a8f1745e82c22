;; A plugin of aigw's component world `aigw:plugin` (runtime/proxy/wit/plugin.wit), written
;; as WebAssembly text: it masks a word (its configuration, a JSON string) with `*` in the
;; request body, marking such a request `x-redacted: 1`, and in each chunk of the answer. It
;; rewrites bodies in place and hands them back as the new body or chunk.
;;
;; Memory: 64.. constant texts; 512..544 the returned `action`; 576..592 one header; 640..648
;; where the host writes `config`'s string.
(component
  (import "config" (func $config (result string)))
  ;; Memory and a bump allocator (each request has its own instance, so nothing is freed),
  ;; instantiated first so that the host functions can be lowered with them.
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32) (local $end i32) (local $have i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $at) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.add
                    (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16))
                    (i32.const 1)))
                (i32.const -1))
            (then unreachable))))
      (global.set $next (local.get $end))
      (if (local.get $old_size)
        (then (memory.copy (local.get $at) (local.get $old) (local.get $old_size))))
      (local.get $at)))
  (core instance $libc (instantiate $libc))
  (core func $config_lowered (canon lower (func $config)
    (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))

  (core module $redact
    (import "libc" "memory" (memory 1))
    (import "host" "config" (func $config (param i32)))
    (data (i32.const 64) "x-redacted")
    (data (i32.const 80) "1")
    (global $word (mut i32) (i32.const 0))
    (global $word_len (mut i32) (i32.const -1))

    ;; The configured word: the JSON string's text between its quotes.
    (func $load_word
      (local $len i32)
      (if (i32.ge_s (global.get $word_len) (i32.const 0)) (then (return)))
      (call $config (i32.const 640))
      (local.set $len (i32.load (i32.const 644)))
      (global.set $word_len (i32.const 0))
      (if (i32.ge_u (local.get $len) (i32.const 3))
        (then
          (global.set $word (i32.add (i32.load (i32.const 640)) (i32.const 1)))
          (global.set $word_len (i32.sub (local.get $len) (i32.const 2))))))

    ;; Masks each time the word is in the `len` bytes at `at`; how many times it was.
    (func $mask (param $at i32) (param $len i32) (result i32)
      (local $i i32) (local $j i32) (local $found i32)
      (if (i32.eqz (global.get $word_len)) (then (return (i32.const 0))))
      (if (i32.lt_u (local.get $len) (global.get $word_len)) (then (return (i32.const 0))))
      (loop $start
        (local.set $j (i32.const 0))
        (block $differs
          (loop $compare
            (br_if $differs
              (i32.ne
                (i32.load8_u (i32.add (local.get $at) (i32.add (local.get $i) (local.get $j))))
                (i32.load8_u (i32.add (global.get $word) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $compare (i32.lt_u (local.get $j) (global.get $word_len))))
          (memory.fill
            (i32.add (local.get $at) (local.get $i)) (i32.const 42) (global.get $word_len))
          (local.set $found (i32.add (local.get $found) (i32.const 1)))
          (local.set $i (i32.add (local.get $i) (i32.sub (global.get $word_len) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $start
          (i32.le_s (local.get $i) (i32.sub (local.get $len) (global.get $word_len)))))
      (local.get $found))

    ;; action.continue
    (func $continue (result i32)
      (i32.store8 (i32.const 512) (i32.const 0))
      (i32.const 512))

    ;; action.modify: `headers` headers from 576 (0 or 1), none removed, the new body.
    (func $modify (param $headers i32) (param $body i32) (param $body_len i32) (result i32)
      (i32.store (i32.const 576) (i32.const 64))
      (i32.store (i32.const 580) (i32.const 10))
      (i32.store (i32.const 584) (i32.const 80))
      (i32.store (i32.const 588) (i32.const 1))
      (i32.store8 (i32.const 512) (i32.const 1))
      (i32.store (i32.const 516) (i32.const 576))
      (i32.store (i32.const 520) (local.get $headers))
      (i32.store (i32.const 524) (i32.const 0))
      (i32.store (i32.const 528) (i32.const 0))
      (i32.store8 (i32.const 532) (i32.const 1))
      (i32.store (i32.const 536) (local.get $body))
      (i32.store (i32.const 540) (local.get $body_len))
      (i32.const 512))

    (func (export "on-request")
      (param $headers i32) (param $headers_len i32) (param $body i32) (param $body_len i32)
      (result i32)
      (call $load_word)
      (if (i32.eqz (call $mask (local.get $body) (local.get $body_len)))
        (then (return (call $continue))))
      (call $modify (i32.const 1) (local.get $body) (local.get $body_len)))

    (func (export "on-response")
      (param $headers i32) (param $headers_len i32) (param $chunk i32) (param $chunk_len i32)
      (result i32)
      (call $load_word)
      (if (i32.eqz (call $mask (local.get $chunk) (local.get $chunk_len)))
        (then (return (call $continue))))
      (call $modify (i32.const 0) (local.get $chunk) (local.get $chunk_len))))
  (core instance $plugin (instantiate $redact
    (with "libc" (instance $libc))
    (with "host" (instance (export "config" (func $config_lowered))))))

  ;; The world's types (runtime/proxy/wit/plugin.wit); records and variants are exported by
  ;; name, as the component model asks of the types of exported functions.
  (type $headers (list (tuple string string)))
  (type $modification' (record
    (field "set-headers" $headers)
    (field "remove-headers" (list string))
    (field "body" (option (list u8)))))
  (export $modification "modification" (type $modification'))
  (type $rejection' (record
    (field "status" u16)
    (field "headers" $headers)
    (field "body" (list u8))))
  (export $rejection "rejection" (type $rejection'))
  (type $action' (variant
    (case "continue")
    (case "modify" $modification)
    (case "reject" $rejection)))
  (export $action "action" (type $action'))
  (func (export "on-request") (param "headers" $headers) (param "body" (list u8)) (result $action)
    (canon lift (core func $plugin "on-request")
      (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (func (export "on-response") (param "headers" $headers) (param "chunk" (list u8)) (result $action)
    (canon lift (core func $plugin "on-response")
      (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
)
