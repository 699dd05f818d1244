/*
 * stableloss.h -- the public C interface of the stableloss kernels.
 *
 * This header is also the cffi cdef (kernels/build.py strips the preprocessor lines), so it holds
 * declarations only.  Every backend (numpy reference, Numba, C) implements exactly these
 * signatures, argument for argument, so that the dispatcher calls them alike.
 *
 * Calling convention, shared by every loss kernel:
 *   inputs ..., sizes and scalar parameters ..., rows_per_block, outputs ..., block_sums
 *   - Arrays are C-contiguous.  A "row" is one sample: n_classes logits for ce and lse, one element
 *     for the elementwise losses (bce, gnll, kl, mse, huber, focal, pnll), so that n_rows counts elements there.
 *   - Optional inputs and every output may be NULL (numpy/Numba: None), meaning "absent" for an
 *     input and "not wanted" for an output.
 *   - loss[i] is the per-row loss, rounded once to the input type.  grad (same shape as the
 *     differentiated input) is grad_scale * d(sum_i loss[i]) / d(input), rounded once; the dispatcher
 *     passes grad_scale = 1/denominator for reduction="mean", 1 otherwise.
 *   - block_sums[b] is the sum, in double, of the unrounded per-row losses of rows
 *     [b*rows_per_block, min((b+1)*rows_per_block, n_rows)) counted from the first row passed.  The
 *     dispatcher splits work across threads only at block boundaries and adds block_sums in a fixed
 *     order, so results are bitwise identical for any thread count.  float64 kernels use a
 *     compensated sum inside a block (the 4-ulp reduction budget); float32 kernels sum in double.
 *   - float32 kernels compute in double and round once.  Kernels never validate: the Python layer
 *     has checked shapes, target ranges and values before the call.  Indices are 64-bit.
 *   - Nothing is returned; NaN in gives NaN out; the special cases are listed per kernel.
 */
#include <stdint.h>

/* Cross-entropy of x[n_rows][n_classes] (logits).  Exactly one of target (class index per row, in
 * [0, n_classes) or == ignore_index) and target_prob[n_rows][n_classes] (class probabilities) is
 * non-NULL; weight[n_classes] is optional (NULL = all ones).  With a = max_j x_j attained first at
 * k, z_j = x_j - a, s = sum_{j != k} e^{z_j}, S = 1 + s and L_j = -log p_j = log1p(s) - z_j:
 *   index target y:  loss = (1 - eps) w_y L_y + (eps / C) sum_j w_j L_j, 0 when y == ignore_index
 *   probabilities t: loss = sum_j w_j t'_j L_j with t'_j = (1 - eps) t_j + eps / C
 *   grad_j = (1 - eps) w_y (p_j - [j == y]) + (eps / C)(W p_j - w_j),  W = sum_j w_j,  p_j = e^{z_j}/S
 *            (probability targets: (sum_c w_c t'_c) p_j - w_j t'_j); ignored rows get 0;
 *            at j == y == k the term p_y - 1 is computed as -s/S.  A class with x_j = -inf (finite
 *            max) and coefficient 0 adds 0 to the loss (0 (-log 0) = 0).
 * softcap > 0: all of this of x'_j = softcap tanh(x_j / softcap) (+-inf -> +-softcap), grad_j times
 * 1 - tanh^2(x_j / softcap); 0: no cap.  z_loss: loss += rho z_loss lse^2, grad_j += 2 rho z_loss lse p_j,
 * lse = a + log1p(s), rho = w_y (index targets), 1 (probabilities), 0 for ignored rows.  lse[n_rows]
 * (optional): each row's lse, ignored rows included; a row with no finite max, as sl_lse.        */
void sl_ce_f32(const float *input, const int64_t *target, const float *target_prob, const float *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing, double z_loss,
               double softcap, double grad_scale, int64_t rows_per_block, float *loss, float *grad, float *lse,
               double *block_sums);
void sl_ce_f64(const double *input, const int64_t *target, const double *target_prob, const double *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing, double z_loss,
               double softcap, double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *lse,
               double *block_sums);

/* Negative log-likelihood of x[n_rows][n_classes] (log-probabilities) with a class index per row (in
 * [0, n_classes) or == ignore_index); weight[n_classes] optional (NULL = all ones):
 *   loss = -w_y x_y, 0 when y == ignore_index; only x_y is read (a NaN elsewhere in the row does not
 *          reach the loss), and w_y = 0 at x_y = -inf gives NaN (0 inf), as PyTorch;
 *   grad_j = -w_y [j == y] whatever x_y; ignored rows get 0.                                         */
void sl_nll_f32(const float *input, const int64_t *target, const float *weight, int64_t n_rows,
                int64_t n_classes, int64_t ignore_index, double grad_scale, int64_t rows_per_block,
                float *loss, float *grad, double *block_sums);
void sl_nll_f64(const double *input, const int64_t *target, const double *weight, int64_t n_rows,
                int64_t n_classes, int64_t ignore_index, double grad_scale, int64_t rows_per_block,
                double *loss, double *grad, double *block_sums);

/* BCE with logits, elementwise: loss = w (pw y sp(-x) + (1 - y) sp(x)), sp = softplus, where a term
 * whose label factor (y, resp. 1 - y) is 0 counts as 0 (so x = +-inf gives the limit 0 or +inf).
 * weight and pos_weight are optional, already broadcast to n_rows elements.
 * grad = w ((1 - y) sigma(x) - pw y sigma(-x)).                                                   */
void sl_bce_f32(const float *input, const float *target, const float *weight, const float *pos_weight,
                int64_t n_rows, double grad_scale, int64_t rows_per_block,
                float *loss, float *grad, double *block_sums);
void sl_bce_f64(const double *input, const double *target, const double *weight, const double *pos_weight,
                int64_t n_rows, double grad_scale, int64_t rows_per_block,
                double *loss, double *grad, double *block_sums);

/* Gaussian NLL, elementwise, var already broadcast to n_rows elements: v = var < eps ? eps : var (NaN
 * stays NaN), d = x - t, loss = (log v + d (d / v)) / 2 (+ log(2 pi) / 2 when full != 0);
 * grad_input = d / v, grad_var = (1/v - (d/v)^2) / 2 at the clamped v (straight through).        */
void sl_gnll_f32(const float *input, const float *target, const float *var,
                 int64_t n_rows, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 float *loss, float *grad_input, float *grad_var, double *block_sums);
void sl_gnll_f64(const double *input, const double *target, const double *var,
                 int64_t n_rows, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 double *loss, double *grad_input, double *grad_var, double *block_sums);

/* KL divergence term, elementwise, input = log q: log_target == 0: loss = p (log p - input),
 * grad = -p; log_target != 0 (target = log p): loss = e^{lp} (lp - input), grad = -e^{lp}.
 * Where p == 0 (lp == -inf) loss and grad are 0, also for input = -inf; the loss is NaN for input NaN
 * or +inf.  p < 0, and p = +inf without log_target, give a NaN loss.                                */
void sl_kl_f32(const float *input, const float *target, int64_t n_rows, int64_t log_target,
               double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums);
void sl_kl_f64(const double *input, const double *target, int64_t n_rows, int64_t log_target,
               double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums);

/* Mean squared error, elementwise: loss = w (x - t)^2, grad = 2 w (x - t); weight optional.       */
void sl_mse_f32(const float *input, const float *target, const float *weight, int64_t n_rows,
                double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums);
void sl_mse_f64(const double *input, const double *target, const double *weight, int64_t n_rows,
                double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums);

/* Huber, smooth L1 and L1, elementwise, d = x - t, weight optional: loss = w (|d| < delta ? d^2/(2q) :
 * m (|d| - delta/2)) with q = delta, m = 1 when smooth != 0 (smooth_l1; l1 is delta = 0) and q = 1,
 * m = delta when smooth == 0 (huber); grad = w (|d| < delta ? d/q : m sign(d)), sign(0) = 0.       */
void sl_huber_f32(const float *input, const float *target, const float *weight, int64_t n_rows, double delta,
                  int64_t smooth, double grad_scale, int64_t rows_per_block, float *loss, float *grad,
                  double *block_sums);
void sl_huber_f64(const double *input, const double *target, const double *weight, int64_t n_rows, double delta,
                  int64_t smooth, double grad_scale, int64_t rows_per_block, double *loss, double *grad,
                  double *block_sums);
/* Sigmoid focal loss (torchvision's), elementwise: with e = e^-|x|, (A, B) = (1, e) for x >= 0 and (e, 1)
 * below, num = t B + (1 - t) A (= (1 - p_t)(1 + e)), ce = log1p(e) + (1 - t) max(x, 0) + t max(-x, 0)
 * (a term whose label factor is 0 counts as 0: the limits at x = +-inf) and a_t = alpha t + (1 - alpha)
 * (1 - t), or 1 for alpha < 0: loss = a_t ce (num/(1 + e))^gamma (0^0 = 1; a_t = 0 gives 0 also where
 * ce = +inf), grad = a_t (num/(1 + e))^gamma ((1 - t) A - t B + gamma ce (1 - 2t) e/num)/(1 + e), with
 * e/num = 1 where num = e and the last term 0 where e = 0.  alpha <= 1, 0 <= gamma < inf, t in [0, 1]. */
void sl_focal_f32(const float *inputs, const float *targets, int64_t n_rows, double alpha, double gamma,
                  double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums);
void sl_focal_f64(const double *inputs, const double *targets, int64_t n_rows, double alpha, double gamma,
                  double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums);
/* Poisson NLL, elementwise: log_input != 0: loss = e^x - t x, grad = e^x - t; log_input == 0: lam = x + eps
 * (exact), loss = x - t log(lam), grad = 1 - t/lam.  full != 0 adds t log t - t + log(2 pi t)/2 where t > 1.
 * t == 0 makes t x and t log(lam) 0 (loss e^x or x, gradient e^x or 1, also at x = -inf, lam = 0); x = +inf
 * gives +inf for a finite target (NaN for t = +inf); lam < 0 a NaN loss; full with t = +inf NaN.          */
void sl_pnll_f32(const float *input, const float *target, int64_t n_rows, int64_t log_input, int64_t full,
                 double eps, double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums);
void sl_pnll_f64(const double *input, const double *target, int64_t n_rows, int64_t log_input, int64_t full,
                 double eps, double grad_scale, int64_t rows_per_block, double *loss, double *grad,
                 double *block_sums);

/* Row-wise log-sum-exp of x[n_rows][n_cols]: lse = a + log1p(s), log_softmax_j = z_j - log1p(s),
 * softmax_j = e^{z_j} / S (notation of sl_ce); each output optional.  No block sums.  A row with an
 * infinite max and no NaN: lse = a (+inf, or -inf for an all -inf row), the other outputs NaN.    */
void sl_lse_f32(const float *x, int64_t n_rows, int64_t n_cols,
                float *lse, float *log_softmax, float *softmax);
void sl_lse_f64(const double *x, int64_t n_rows, int64_t n_cols,
                double *lse, double *log_softmax, double *softmax);

/* SIMD level of the C kernels: 0 = portable scalar code, 1 = AVX2+FMA, 2 = AVX-512 (F, DQ, BW, VL).
 * The best the CPU supports (sl_simd_best_level), detected once on first use; sl_set_simd_level(level) selects
 * min(level, best supported), level < 0 restores the detected default, so that tests can run and
 * compare every level the CPU has.  (C backend only.)                                               */
int sl_simd_level(void);
int sl_simd_best_level(void);
void sl_set_simd_level(int level);
