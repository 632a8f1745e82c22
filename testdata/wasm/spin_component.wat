;; A plugin of aigw's component world `aigw:plugin` (runtime/proxy/wit/plugin.wit) whose
;; `on-request` never returns: the fuel of its call stops it.
(component
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
  (core module $spin
    (import "libc" "memory" (memory 1))
    (func (export "on-request") (param i32 i32 i32 i32) (result i32)
      (loop $forever (br $forever))
      (unreachable))
    (func (export "on-response") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 512) (i32.const 0))
      (i32.const 512)))
  (core instance $plugin (instantiate $spin (with "libc" (instance $libc))))

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
