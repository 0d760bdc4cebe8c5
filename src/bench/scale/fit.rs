//! The curve: how a figure grows with the cluster, as the exponent of a power law
//! fitted on log-log axes (least squares).

/// The exponent `b` of `y ≈ a·x^b` over `points` (x, y), if at least two points with
/// distinct positive x and positive y are given.
pub fn exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = logs.len() as f64;
    if logs.len() < 2 {
        return None;
    }
    let mx = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::exponent;

    #[test]
    fn power_laws_give_their_exponent() {
        let linear: Vec<(f64, f64)> = [10.0, 30.0, 100.0].iter().map(|&x| (x, 3.0 * x)).collect();
        assert!((exponent(&linear).unwrap() - 1.0).abs() < 1e-9);
        let square: Vec<(f64, f64)> = [1.0, 2.0, 8.0].iter().map(|&x| (x, x * x)).collect();
        assert!((exponent(&square).unwrap() - 2.0).abs() < 1e-9);
        let flat = [(100.0, 5.0), (1000.0, 5.0), (10000.0, 5.0)];
        assert!(exponent(&flat).unwrap().abs() < 1e-9);
    }

    #[test]
    fn too_few_points_give_none() {
        assert_eq!(exponent(&[]), None);
        assert_eq!(exponent(&[(10.0, 1.0)]), None);
        assert_eq!(exponent(&[(10.0, 1.0), (10.0, 2.0)]), None);
        assert_eq!(exponent(&[(10.0, 0.0), (20.0, 1.0)]), None);
    }
}
