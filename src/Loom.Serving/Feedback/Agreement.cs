namespace Loom.Serving.Feedback;

/// <summary>The distance Krippendorff's alpha uses between two values: which differences count, and how much.</summary>
public enum AlphaMetric { Nominal, Ordinal, Interval, Ratio }

/// <summary>Cohen's kappa between two annotators over the items both judged.</summary>
public sealed record AnnotatorPairAgreement(string First, string Second, int SharedUnits, double? CohenKappa);

/// <summary>
/// How much the annotators of one task agree. A unit is an item (pairwise, thumbs, rating, correction) or, for
/// rankings, one pair of an item's responses (each ranking induces an order on every pair; see
/// <see cref="Agreement.ForTask"/>). Only units with at least two labels count. Null where a figure is undefined
/// (fewer than two labelled units, or every label the same so chance agreement is total).
/// </summary>
public sealed record TaskAgreement
{
    public required string TaskId { get; init; }
    public required JudgementKind Kind { get; init; }
    /// <summary>Items with at least one judgement of the task's kind.</summary>
    public required int JudgedItems { get; init; }
    /// <summary>Items with judgements from at least two annotators.</summary>
    public required int OverlapItems { get; init; }
    /// <summary>Judgements used (of the task's kind, whose shown responses were found in their item).</summary>
    public required int Judgements { get; init; }
    /// <summary>Judgements left out because a shown response is not among the item's responses.</summary>
    public required int Unmatched { get; init; }
    /// <summary>"items" or "response pairs": what one unit of the figures below is.</summary>
    public required string Units { get; init; }
    /// <summary>Units with at least two labels.</summary>
    public required int UnitsCompared { get; init; }
    /// <summary>Raw agreement in percent: of all pairs of annotators labelling the same unit, how many gave the same label.</summary>
    public double? PercentAgreement { get; init; }
    public double? FleissKappa { get; init; }
    public double? KrippendorffAlpha { get; init; }
    /// <summary>The metric the alpha used: nominal for pairwise, thumbs, ranking pairs and corrections; ordinal for ratings.</summary>
    public required AlphaMetric AlphaMetric { get; init; }
    /// <summary>Cohen's kappa for every two annotators who labelled at least one unit in common.</summary>
    public required IReadOnlyList<AnnotatorPairAgreement> Pairs { get; init; }
}

/// <summary>
/// Inter-annotator agreement: Cohen's kappa (two raters), Fleiss' kappa (any number of raters per item) and
/// Krippendorff's alpha (nominal, ordinal, interval, ratio; missing values allowed), and their application to a
/// feedback task. The pure functions return <see cref="double.NaN"/> where the statistic is undefined (no units, or
/// expected disagreement of zero).
/// </summary>
public static class Agreement
{
    /// <summary>Cohen's kappa: (p_o − p_e) / (1 − p_e) over items labelled by both raters, p_e from each rater's own marginals.</summary>
    public static double CohenKappa<T>(IReadOnlyList<T> first, IReadOnlyList<T> second) where T : notnull
    {
        if (first.Count != second.Count) throw new ArgumentException($"the two raters label {first.Count} and {second.Count} items; they must label the same items", nameof(second));
        int n = first.Count;
        if (n == 0) return double.NaN;
        int same = 0;
        var firstCounts = new Dictionary<T, int>();
        var secondCounts = new Dictionary<T, int>();
        for (int i = 0; i < n; i++)
        {
            if (EqualityComparer<T>.Default.Equals(first[i], second[i])) same++;
            firstCounts[first[i]] = firstCounts.GetValueOrDefault(first[i]) + 1;
            secondCounts[second[i]] = secondCounts.GetValueOrDefault(second[i]) + 1;
        }
        double observed = (double)same / n;
        double expected = firstCounts.Sum(c => (double)c.Value * secondCounts.GetValueOrDefault(c.Key)) / ((double)n * n);
        return expected >= 1 ? double.NaN : (observed - expected) / (1 - expected);
    }

    /// <summary>
    /// Fleiss' kappa from counts: <paramref name="counts"/>[item][category] = raters who put the item in the category.
    /// With the same number of raters per item this is Fleiss (1971). With varying numbers it is the usual
    /// generalisation (Fleiss, Levin and Paik 2003): each item's agreement P_i = Σ_j n_ij(n_ij − 1) / (n_i(n_i − 1)),
    /// P̄ their mean, category shares p_j = Σ_i n_ij / Σ_i n_i, P_e = Σ_j p_j². Items with fewer than two raters are left out.
    /// </summary>
    public static double FleissKappaFromCounts(IReadOnlyList<IReadOnlyList<int>> counts)
    {
        var (observed, expected) = FleissParts(counts);
        return expected >= 1 || double.IsNaN(observed) ? double.NaN : (observed - expected) / (1 - expected);
    }

    /// <summary>Fleiss' kappa from each item's labels (any number per item; see <see cref="FleissKappaFromCounts"/>).</summary>
    public static double FleissKappa<T>(IEnumerable<IReadOnlyList<T>> itemLabels) where T : notnull => FleissKappaFromCounts(Counts(itemLabels));

    /// <summary>Observed agreement P̄ of Fleiss' kappa: the share of rater pairs on the same item that agree, averaged over items.</summary>
    public static double ObservedAgreement<T>(IEnumerable<IReadOnlyList<T>> itemLabels) where T : notnull => FleissParts(Counts(itemLabels)).Observed;

    static (double Observed, double Expected) FleissParts(IReadOnlyList<IReadOnlyList<int>> counts)
    {
        if (counts.Count == 0) return (double.NaN, double.NaN);
        int categories = counts[0].Count;
        var totals = new double[categories];
        double agreement = 0, ratings = 0;
        int items = 0;
        for (int i = 0; i < counts.Count; i++)
        {
            var row = counts[i];
            if (row.Count != categories) throw new ArgumentException($"counts[{i}] has {row.Count} categories; counts[0] has {categories}", nameof(counts));
            int raters = 0;
            foreach (int c in row) raters += c >= 0 ? c : throw new ArgumentException($"counts[{i}] holds a negative count", nameof(counts));
            if (raters < 2) continue;
            double pairs = 0;
            for (int j = 0; j < categories; j++)
            {
                pairs += (double)row[j] * (row[j] - 1);
                totals[j] += row[j];
            }
            agreement += pairs / ((double)raters * (raters - 1));
            ratings += raters;
            items++;
        }
        if (items == 0) return (double.NaN, double.NaN);
        double expected = totals.Sum(t => (t / ratings) * (t / ratings));
        return (agreement / items, expected);
    }

    static List<IReadOnlyList<int>> Counts<T>(IEnumerable<IReadOnlyList<T>> itemLabels) where T : notnull
    {
        var categories = new Dictionary<T, int>();
        var items = itemLabels.ToList();
        foreach (var labels in items)
            foreach (var label in labels)
                categories.TryAdd(label, categories.Count);
        return [.. items.Select(labels =>
        {
            var row = new int[categories.Count];
            foreach (var label in labels) row[categories[label]]++;
            return (IReadOnlyList<int>)row;
        })];
    }

    /// <summary>
    /// Krippendorff's alpha from a reliability data matrix: <paramref name="data"/>[coder][unit], null where the coder
    /// gave no value. Rows must have the same length.
    /// </summary>
    public static double KrippendorffAlpha(IReadOnlyList<IReadOnlyList<double?>> data, AlphaMetric metric)
    {
        if (data.Count == 0) return double.NaN;
        int units = data[0].Count;
        for (int c = 0; c < data.Count; c++)
            if (data[c].Count != units) throw new ArgumentException($"data[{c}] has {data[c].Count} units; data[0] has {units}", nameof(data));
        var values = new List<IReadOnlyList<double>>();
        for (int u = 0; u < units; u++)
            values.Add([.. data.Where(row => row[u].HasValue).Select(row => row[u]!.Value)]);
        return KrippendorffAlpha(values, metric);
    }

    /// <summary>
    /// Krippendorff's alpha from the values each unit received (in any order; missing values simply absent), as in
    /// Krippendorff (2011) "Computing Krippendorff's alpha-reliability": α = 1 − D_o / D_e over the coincidence matrix
    /// of pairable values (units with at least two values).
    /// </summary>
    public static double KrippendorffAlpha(IEnumerable<IReadOnlyList<double>> units, AlphaMetric metric)
    {
        var pairable = units.Where(u => u.Count >= 2).ToList();
        foreach (var unit in pairable)
            foreach (double v in unit)
                if (!double.IsFinite(v) || (metric == AlphaMetric.Ratio && v < 0))
                    throw new ArgumentException($"value {v} cannot be coded under the {metric} metric", nameof(units));
        var values = pairable.SelectMany(u => u).Distinct().Order().ToArray();
        if (values.Length == 0) return double.NaN;
        var index = values.Select((v, i) => (v, i)).ToDictionary(p => p.v, p => p.i);
        int k = values.Length;
        var coincidences = new double[k, k];  // [value, value]
        foreach (var unit in pairable)
        {
            double weight = 1.0 / (unit.Count - 1);
            for (int i = 0; i < unit.Count; i++)
                for (int j = 0; j < unit.Count; j++)
                    if (i != j) coincidences[index[unit[i]], index[unit[j]]] += weight;
        }
        var marginals = new double[k];  // [value]
        for (int c = 0; c < k; c++)
            for (int d = 0; d < k; d++)
                marginals[c] += coincidences[c, d];
        double n = marginals.Sum();
        double observed = 0, expected = 0;
        for (int c = 0; c < k; c++)
            for (int d = 0; d < k; d++)
            {
                if (c == d) continue;
                double delta = SquaredDifference(values, marginals, c, d, metric);
                observed += coincidences[c, d] * delta;
                expected += marginals[c] * marginals[d] * delta;
            }
        observed /= n;
        expected /= n * (n - 1);
        return expected <= 0 ? double.NaN : 1 - observed / expected;
    }

    /// <summary>Krippendorff's δ²(c, k) for the metric; <paramref name="marginals"/> are the values' frequencies n_g (ordinal).</summary>
    static double SquaredDifference(double[] values, double[] marginals, int c, int k, AlphaMetric metric)
    {
        double a = values[c], b = values[k];
        switch (metric)
        {
            case AlphaMetric.Nominal: return 1;
            case AlphaMetric.Interval: return (a - b) * (a - b);
            case AlphaMetric.Ratio: return a + b == 0 ? 0 : (a - b) * (a - b) / ((a + b) * (a + b));
            case AlphaMetric.Ordinal:
                int low = Math.Min(c, k), high = Math.Max(c, k);
                double between = 0;
                for (int g = low; g <= high; g++) between += marginals[g];
                between -= (marginals[c] + marginals[k]) / 2;
                return between * between;
            default: throw new ArgumentOutOfRangeException(nameof(metric));
        }
    }

    /// <summary>
    /// Agreement among the annotators of <paramref name="task"/>. The studio shows responses in a random order per
    /// annotator, so each judgement's choice or ranking is first mapped back to its item's responses (matched by text
    /// and model version; see <see cref="JudgementLabels"/>). Labels per kind:
    /// pairwise: which item response won, tie, or both bad (nominal); thumbs: up or down (nominal); rating: the score
    /// (Fleiss nominal, alpha ordinal); correction: the corrected text, trimmed (nominal: identical or not); rank: every
    /// pair of the item's responses is a unit whose label is which of the two the annotator ranked higher, so partial
    /// agreement on a ranking counts (pairwise agreement over induced pairwise orders, nominal).
    /// Items missing from <paramref name="items"/> are rebuilt from their first judgement (what it showed).
    /// </summary>
    public static TaskAgreement ForTask(FeedbackTask task, IReadOnlyList<FeedbackItem> items, IReadOnlyList<Judgement> judgements)
    {
        var labelled = JudgementLabels.ForTask(task, items, judgements);
        // unit key → annotator → label
        var units = new Dictionary<string, Dictionary<string, string>>();
        var unitOrder = new List<string>();
        foreach (var entry in labelled.Labels)
            foreach (var (unit, label) in entry.Units)
            {
                if (!units.TryGetValue(unit, out var byAnnotator))
                {
                    units[unit] = byAnnotator = [];
                    unitOrder.Add(unit);
                }
                byAnnotator[entry.Judgement.Annotator] = label;
            }
        var compared = unitOrder.Where(u => units[u].Count >= 2).Select(u => (IReadOnlyList<string>)[.. units[u].Values]).ToList();
        var metric = task.Kind == JudgementKind.Rating ? AlphaMetric.Ordinal : AlphaMetric.Nominal;
        double percent = ObservedAgreement(compared) * 100;
        double fleiss = FleissKappa(compared);
        double alpha = metric == AlphaMetric.Ordinal
            ? KrippendorffAlpha(compared.Select(u => (IReadOnlyList<double>)[.. u.Select(l => double.Parse(l, System.Globalization.CultureInfo.InvariantCulture))]), metric)
            : KrippendorffAlpha(NominalCodes(compared), metric);

        var annotators = labelled.Labels.Select(l => l.Judgement.Annotator).Distinct().Order(StringComparer.Ordinal).ToList();
        var pairs = new List<AnnotatorPairAgreement>();
        for (int a = 0; a < annotators.Count; a++)
            for (int b = a + 1; b < annotators.Count; b++)
            {
                var first = new List<string>();
                var second = new List<string>();
                foreach (var unit in unitOrder)
                    if (units[unit].TryGetValue(annotators[a], out var x) && units[unit].TryGetValue(annotators[b], out var y))
                    {
                        first.Add(x);
                        second.Add(y);
                    }
                if (first.Count > 0) pairs.Add(new AnnotatorPairAgreement(annotators[a], annotators[b], first.Count, Defined(CohenKappa(first, second))));
            }

        return new TaskAgreement
        {
            TaskId = task.Id,
            Kind = task.Kind,
            JudgedItems = labelled.Labels.Select(l => l.Item.Id).Distinct().Count(),
            OverlapItems = labelled.Labels.GroupBy(l => l.Item.Id).Count(g => g.Select(l => l.Judgement.Annotator).Distinct().Count() >= 2),
            Judgements = labelled.Labels.Count,
            Unmatched = labelled.Unmatched,
            Units = task.Kind == JudgementKind.Rank ? "response pairs" : "items",
            UnitsCompared = compared.Count,
            PercentAgreement = Defined(percent),
            FleissKappa = Defined(fleiss),
            KrippendorffAlpha = Defined(alpha),
            AlphaMetric = metric,
            Pairs = pairs,
        };
    }

    /// <summary>Nominal labels as numbers for alpha (only equality matters).</summary>
    static IEnumerable<IReadOnlyList<double>> NominalCodes(List<IReadOnlyList<string>> units)
    {
        var codes = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var unit in units)
            yield return [.. unit.Select(label => codes.TryGetValue(label, out double code) ? code : codes[label] = codes.Count)];
    }

    static double? Defined(double value) => double.IsFinite(value) ? value : null;
}
