;; A component that exports nothing of aigw's plugin world: the gateway refuses to load it.
(component
  (core module $m
    (func (export "hello") (result i32) (i32.const 42)))
  (core instance $i (instantiate $m))
  (func (export "hello") (result u32) (canon lift (core func $i "hello"))))
