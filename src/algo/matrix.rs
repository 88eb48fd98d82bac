//! Compact interaction matrices: rows of (column, weight) in CSR layout, with integer ids.

/// A sparse matrix in compressed-row form. Rows are users (or items, for the transpose); columns are
/// sorted within each row and unique.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row `r` occupies `indices[indptr[r]..indptr[r + 1]]`.
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds from (row, col, weight) triplets; duplicates are summed.
    pub fn from_triplets(n_rows: usize, n_cols: usize, mut triplets: Vec<(u32, u32, f32)>) -> Self {
        triplets.sort_unstable_by_key(|&(r, c, _)| (r, c));
        let rows = triplets.into_iter().map(|(r, c, w)| (r, c, w, ()));
        Self::from_sorted(n_rows, n_cols, rows, |(), ()| ()).0
    }

    /// Builds from (row, col, weight, value) entries sorted by (row, col), with each entry's value
    /// (aligned with `indices`): entries of one cell merge, their weights summed and their values
    /// combined by `combine` in the order given.
    pub fn from_sorted<T>(
        n_rows: usize,
        n_cols: usize,
        entries: impl ExactSizeIterator<Item = (u32, u32, f32, T)>,
        combine: impl Fn(T, T) -> T,
    ) -> (Self, Vec<T>) {
        let mut indptr = vec![0usize; n_rows + 1];
        let mut indices = Vec::with_capacity(entries.len());
        let mut data: Vec<f32> = Vec::with_capacity(entries.len());
        let mut values: Vec<T> = Vec::with_capacity(entries.len());
        let mut last: Option<(u32, u32)> = None;
        for (r, c, w, v) in entries {
            if last == Some((r, c)) {
                *data.last_mut().expect("a previous entry") += w;
                let merged = values.pop().expect("a previous entry");
                values.push(combine(merged, v));
                continue;
            }
            last = Some((r, c));
            indptr[r as usize + 1] += 1;
            indices.push(c);
            data.push(w);
            values.push(v);
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        let matrix = Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        };
        (matrix, values)
    }

    /// The columns and weights of row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[span.clone()], &self.data[span])
    }

    pub fn row_len(&self, r: usize) -> usize {
        self.indptr[r + 1] - self.indptr[r]
    }

    /// Whether row `r` holds column `c` (binary search: columns are sorted).
    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).0.binary_search(&c).is_ok()
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The transpose (items × users from users × items).
    pub fn transpose(&self) -> Csr {
        let mut triplets = Vec::with_capacity(self.nnz());
        for r in 0..self.n_rows {
            let (cols, ws) = self.row(r);
            for (&c, &w) in cols.iter().zip(ws) {
                triplets.push((c, r as u32, w));
            }
        }
        Csr::from_triplets(self.n_cols, self.n_rows, triplets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sums_duplicates_and_transposes() {
        let m = Csr::from_triplets(
            3,
            4,
            vec![(2, 1, 1.0), (0, 3, 2.0), (0, 1, 1.0), (0, 3, 0.5)],
        );
        assert_eq!(m.row(0), (&[1u32, 3][..], &[1.0f32, 2.5][..]));
        assert_eq!(m.row_len(1), 0);
        assert!(m.contains(2, 1) && !m.contains(2, 0));
        let t = m.transpose();
        assert_eq!((t.n_rows, t.n_cols), (4, 3));
        assert_eq!(t.row(1), (&[0u32, 2][..], &[1.0f32, 1.0][..]));
        assert_eq!(t.transpose(), m);
    }
}
