//! The shape of a convolution, everything but its weights, and what follows from it: the output
//! size and which algorithms can compute it.

/// The shape of a convolution: everything but its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl ConvGeometry {
    fn out_len(&self, len: usize, k: usize) -> Option<usize> {
        (len + 2 * self.padding)
            .checked_sub(k)
            .map(|d| d / self.stride + 1)
    }

    /// Output height and width for an `h × w` input, `None` when the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((self.out_len(h, self.kh)?, self.out_len(w, self.kw)?))
    }

    /// Rows of the unfolded input of one group: `c_in/groups · kh · kw`.
    pub fn k(&self) -> usize {
        self.c_in / self.groups * self.kh * self.kw
    }

    /// Whether [`crate::winograd`] computes this convolution and its input gradient: 3×3,
    /// stride 1, one group, padding at most 2.
    pub fn takes_winograd(&self) -> bool {
        self.kh == 3 && self.kw == 3 && self.stride == 1 && self.groups == 1 && self.padding <= 2
    }

    /// A 1×1 stride-1 unpadded convolution is a plain GEMM on the input as it lies.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }
}
