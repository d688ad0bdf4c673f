;; The optimisers' updates over float32 arrays (optimisers.ts), four values per loop: each float32x4 is
;; split into two float64x2 halves (the high half shuffled down first), each half's results are
;; rounded to float32 (demote), and the two rounded halves are joined back into one vector.
;;
;; Exactly the arithmetic of the JavaScript loops in optimisers.ts (float64 operations on float32
;; inputs, each stored value rounded once to float32), in the same order, so both give the same bits.
;; WebAssembly has no fused multiply-add, and its sqrt and div are IEEE-correctly rounded like V8's.
;; Written out flat, without helper functions: V8 does not inline WebAssembly calls, and calls made
;; the loop 4× slower.
;;
;; Regenerate optimisers-wasm.ts after editing: pnpm --filter @gradfeat/core assemble-wasm
(module
  (memory (export "memory") 1)

  ;; adam(w, g, m, v, n, ...): n values (a multiple of 4) at byte offsets w, g, m, v; w, m, v updated in place.
  ;;   g' = g + decay·w
  ;;   m = f32(β1·m + (1 − β1)·g')
  ;;   v = f32(β2·v + ((1 − β2)·g')·g')
  ;;   w = f32(w − (stepSize·m) / (√v / c2 + ε))
  (func (export "adam")
        (param $w i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
        (param $decay f64) (param $beta1 f64) (param $beta2 f64) (param $stepSize f64) (param $c2 f64) (param $eps f64)
    (local $offset i32) (local $end i32)
    (local $W v128) (local $G v128) (local $M v128) (local $V v128) (local $grad v128)
    (local $m0 v128) (local $v0 v128) (local $w0 v128) (local $m1 v128) (local $v1 v128) (local $w1 v128)
    (local $decay2 v128) (local $beta12 v128) (local $oneMinusBeta12 v128) (local $beta22 v128) (local $oneMinusBeta22 v128)
    (local $stepSize2 v128) (local $c22 v128) (local $eps2 v128)
    (local.set $decay2 (f64x2.splat (local.get $decay)))
    (local.set $beta12 (f64x2.splat (local.get $beta1)))
    (local.set $oneMinusBeta12 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta1))))
    (local.set $beta22 (f64x2.splat (local.get $beta2)))
    (local.set $oneMinusBeta22 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta2))))
    (local.set $stepSize2 (f64x2.splat (local.get $stepSize)))
    (local.set $c22 (f64x2.splat (local.get $c2)))
    (local.set $eps2 (f64x2.splat (local.get $eps)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $offset) (local.get $end)))
        (local.set $W (v128.load (i32.add (local.get $w) (local.get $offset))))
        (local.set $G (v128.load (i32.add (local.get $g) (local.get $offset))))
        (local.set $M (v128.load (i32.add (local.get $m) (local.get $offset))))
        (local.set $V (v128.load (i32.add (local.get $v) (local.get $offset))))

        ;; The low two values.
        (local.set $grad (f64x2.add (f64x2.promote_low_f32x4 (local.get $G)) (f64x2.mul (local.get $decay2) (f64x2.promote_low_f32x4 (local.get $W)))))
        (local.set $m0 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.mul (local.get $beta12) (f64x2.promote_low_f32x4 (local.get $M)))
          (f64x2.mul (local.get $oneMinusBeta12) (local.get $grad)))))
        (local.set $v0 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.mul (local.get $beta22) (f64x2.promote_low_f32x4 (local.get $V)))
          (f64x2.mul (f64x2.mul (local.get $oneMinusBeta22) (local.get $grad)) (local.get $grad)))))
        (local.set $w0 (f32x4.demote_f64x2_zero (f64x2.sub (f64x2.promote_low_f32x4 (local.get $W))
          (f64x2.div
            (f64x2.mul (local.get $stepSize2) (f64x2.promote_low_f32x4 (local.get $m0)))
            (f64x2.add
              (f64x2.div (f64x2.sqrt (f64x2.promote_low_f32x4 (local.get $v0))) (local.get $c22))
              (local.get $eps2))))))

        ;; The high two values.
        (local.set $grad (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $G) (local.get $G))) (f64x2.mul (local.get $decay2) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $W) (local.get $W))))))
        (local.set $m1 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.mul (local.get $beta12) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $M) (local.get $M))))
          (f64x2.mul (local.get $oneMinusBeta12) (local.get $grad)))))
        (local.set $v1 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.mul (local.get $beta22) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $V) (local.get $V))))
          (f64x2.mul (f64x2.mul (local.get $oneMinusBeta22) (local.get $grad)) (local.get $grad)))))
        (local.set $w1 (f32x4.demote_f64x2_zero (f64x2.sub (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $W) (local.get $W)))
          (f64x2.div
            (f64x2.mul (local.get $stepSize2) (f64x2.promote_low_f32x4 (local.get $m1)))
            (f64x2.add
              (f64x2.div (f64x2.sqrt (f64x2.promote_low_f32x4 (local.get $v1))) (local.get $c22))
              (local.get $eps2))))))
        (v128.store (i32.add (local.get $m) (local.get $offset)) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $m0) (local.get $m1)))
        (v128.store (i32.add (local.get $v) (local.get $offset)) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v0) (local.get $v1)))
        (v128.store (i32.add (local.get $w) (local.get $offset)) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $w0) (local.get $w1)))
        (local.set $offset (i32.add (local.get $offset) (i32.const 16)))
        (br $next))))

  ;; sgd(w, g, v, n, ...): n values (a multiple of 4) at byte offsets w, g, v; w and v updated in place.
  ;;   v = f32((momentum·v + g) + decay·w)
  ;;   w = f32(w − learningRate·v)
  (func (export "sgd")
        (param $w i32) (param $g i32) (param $v i32) (param $n i32)
        (param $momentum f64) (param $decay f64) (param $learningRate f64)
    (local $offset i32) (local $end i32)
    (local $W v128) (local $G v128) (local $V v128)
    (local $v0 v128) (local $w0 v128) (local $v1 v128) (local $w1 v128)
    (local $momentum2 v128) (local $decay2 v128) (local $learningRate2 v128)
    (local.set $momentum2 (f64x2.splat (local.get $momentum)))
    (local.set $decay2 (f64x2.splat (local.get $decay)))
    (local.set $learningRate2 (f64x2.splat (local.get $learningRate)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $offset) (local.get $end)))
        (local.set $W (v128.load (i32.add (local.get $w) (local.get $offset))))
        (local.set $G (v128.load (i32.add (local.get $g) (local.get $offset))))
        (local.set $V (v128.load (i32.add (local.get $v) (local.get $offset))))

        ;; The low two values.
        (local.set $v0 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.add (f64x2.mul (local.get $momentum2) (f64x2.promote_low_f32x4 (local.get $V))) (f64x2.promote_low_f32x4 (local.get $G)))
          (f64x2.mul (local.get $decay2) (f64x2.promote_low_f32x4 (local.get $W))))))
        (local.set $w0 (f32x4.demote_f64x2_zero (f64x2.sub (f64x2.promote_low_f32x4 (local.get $W))
          (f64x2.mul (local.get $learningRate2) (f64x2.promote_low_f32x4 (local.get $v0))))))

        ;; The high two values.
        (local.set $v1 (f32x4.demote_f64x2_zero (f64x2.add
          (f64x2.add (f64x2.mul (local.get $momentum2) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $V) (local.get $V)))) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $G) (local.get $G))))
          (f64x2.mul (local.get $decay2) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $W) (local.get $W)))))))
        (local.set $w1 (f32x4.demote_f64x2_zero (f64x2.sub (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $W) (local.get $W)))
          (f64x2.mul (local.get $learningRate2) (f64x2.promote_low_f32x4 (local.get $v1))))))
        (v128.store (i32.add (local.get $v) (local.get $offset)) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v0) (local.get $v1)))
        (v128.store (i32.add (local.get $w) (local.get $offset)) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $w0) (local.get $w1)))
        (local.set $offset (i32.add (local.get $offset) (i32.const 16)))
        (br $next))))
)
