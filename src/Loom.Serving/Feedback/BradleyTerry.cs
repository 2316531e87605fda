namespace Loom.Serving.Feedback;

/// <summary>One comparison between two model versions: <see cref="FirstScore"/> is 1 when the first won, 0 when it lost, 0.5 for a tie.</summary>
public sealed record PairwiseGame(string First, string Second, double FirstScore);

/// <summary>A model version's place on the leaderboard: its rating, the bootstrap interval around it, and its record.</summary>
public sealed record LeaderboardRow(string Version, double Rating, double Low, double High, int Games, int Wins, int Ties);

/// <summary>How the leaderboard is fitted; null means the default.</summary>
public sealed record BradleyTerryOptions
{
    /// <summary>Bootstrap resamples of the games for the interval (default 200; 0 gives Low = High = Rating).</summary>
    public int? Resamples { get; init; }
    /// <summary>Seed of the resampling, so a leaderboard is reproducible (default 0).</summary>
    public int? Seed { get; init; }
    /// <summary>Interval coverage (default 0.95).</summary>
    public double? Confidence { get; init; }
    /// <summary>
    /// Pseudo-games each version wins and loses against a virtual version of average strength (default 0.1): a tiny
    /// prior that keeps an undefeated (or never-winning) version finite. 0 fits the plain maximum likelihood.
    /// </summary>
    public double? Prior { get; init; }
}

/// <summary>
/// Bradley-Terry strengths of model versions from pairwise verdicts, as Chatbot Arena ranks models: P(i beats j) =
/// p_i / (p_i + p_j), fitted by Newton's method on log-strengths, shown on an Elo-like scale
/// (rating = 400·log10 p, shifted so the mean rating is 1000), with percentile bootstrap intervals over games.
/// </summary>
public static class BradleyTerry
{
    public const double Scale = 400, MeanRating = 1000;

    /// <summary>
    /// The games in pairwise judgements between two different model versions (read from what was shown, so the blind
    /// order does not matter): a win, a loss, or a tie counted half to each; both-bad verdicts and comparisons of a
    /// version with itself say nothing about strength and are left out.
    /// </summary>
    public static List<PairwiseGame> Games(IEnumerable<Judgement> judgements)
    {
        var games = new List<PairwiseGame>();
        foreach (var j in judgements)
        {
            if (j.Kind != JudgementKind.Pairwise || j.Shown.Count != 2 || j.Choice is not { } choice || choice == PairwiseChoice.BothBad) continue;
            string first = j.Shown[0].ModelVersion, second = j.Shown[1].ModelVersion;
            if (first == second) continue;
            games.Add(new PairwiseGame(first, second, choice switch { PairwiseChoice.First => 1, PairwiseChoice.Second => 0, _ => 0.5 }));
        }
        return games;
    }

    /// <summary>The leaderboard of the versions in the judgements' pairwise games, best first.</summary>
    public static IReadOnlyList<LeaderboardRow> Leaderboard(IEnumerable<Judgement> judgements, BradleyTerryOptions? options = null) =>
        LeaderboardOfGames(Games(judgements), options);

    /// <summary>The leaderboard of the versions in <paramref name="games"/>, best first (ties in rating by name).</summary>
    public static IReadOnlyList<LeaderboardRow> LeaderboardOfGames(IReadOnlyList<PairwiseGame> games, BradleyTerryOptions? options = null)
    {
        int resamples = options?.Resamples ?? 200;
        double confidence = options?.Confidence ?? 0.95;
        if (resamples < 0) throw new ArgumentException($"BradleyTerryOptions.Resamples must not be negative (got {resamples})", nameof(options));
        if (!(confidence > 0 && confidence < 1)) throw new ArgumentException($"BradleyTerryOptions.Confidence must be between 0 and 1 (got {confidence})", nameof(options));
        var versions = games.SelectMany(g => new[] { g.First, g.Second }).Distinct().Order(StringComparer.Ordinal).ToList();
        var index = versions.Select((v, i) => (v, i)).ToDictionary(p => p.v, p => p.i, StringComparer.Ordinal);
        var indexed = games.Select(g => (First: index[g.First], Second: index[g.Second], g.FirstScore)).ToList();
        var ratings = Fit(indexed, versions.Count, options);

        var low = (double[])ratings.Clone();
        var high = (double[])ratings.Clone();
        if (resamples > 0 && indexed.Count > 0)
        {
            var random = new Random(options?.Seed ?? 0);
            var samples = new double[versions.Count][];  // [version][resample]
            for (int v = 0; v < versions.Count; v++) samples[v] = new double[resamples];
            var resample = new List<(int, int, double)>(indexed.Count);
            for (int r = 0; r < resamples; r++)
            {
                resample.Clear();
                for (int g = 0; g < indexed.Count; g++) resample.Add(indexed[random.Next(indexed.Count)]);
                var fitted = Fit(resample, versions.Count, options);
                for (int v = 0; v < versions.Count; v++) samples[v][r] = fitted[v];
            }
            double tail = (1 - confidence) / 2;
            for (int v = 0; v < versions.Count; v++)
            {
                Array.Sort(samples[v]);
                low[v] = Quantile(samples[v], tail);
                high[v] = Quantile(samples[v], 1 - tail);
            }
        }

        return [.. versions.Select((version, v) => new LeaderboardRow(
                version, ratings[v], low[v], high[v],
                indexed.Count(g => g.First == v || g.Second == v),
                indexed.Count(g => (g.First == v && g.FirstScore == 1) || (g.Second == v && g.FirstScore == 0)),
                indexed.Count(g => (g.First == v || g.Second == v) && g.FirstScore == 0.5)))
            .OrderByDescending(r => r.Rating).ThenBy(r => r.Version, StringComparer.Ordinal)];
    }

    /// <summary>
    /// Ratings (400·log10 of the strengths, mean 1000) fitted to the games by maximum likelihood: Newton's method on
    /// the log-strengths θ (the log-likelihood Σ_i W_i θ_i − Σ_{i&lt;j} n_ij log(e^θ_i + e^θ_j) is concave; W_i counts wins,
    /// ties half, n_ij games between i and j), with step halving so every step raises it. The prior adds its
    /// pseudo-games against a virtual version with θ = 0, which makes the optimum unique and finite; without a prior
    /// the first version is held at θ = 0 and a version that never wins or never loses drifts off (capped at 100 steps).
    /// </summary>
    public static double[] Fit(IReadOnlyList<(int First, int Second, double FirstScore)> games, int versionCount, BradleyTerryOptions? options = null)
    {
        double prior = options?.Prior ?? 0.1;
        if (!(prior >= 0) || double.IsInfinity(prior)) throw new ArgumentException($"BradleyTerryOptions.Prior must be zero or positive (got {prior})", nameof(options));
        int m = versionCount;
        var wins = new double[m];          // [version]
        var played = new double[m, m];     // [version, version]
        foreach (var (first, second, score) in games)
        {
            if (score is not (0 or 0.5 or 1)) throw new ArgumentException($"PairwiseGame.FirstScore must be 0, 0.5 or 1 (got {score})", nameof(games));
            wins[first] += score;
            wins[second] += 1 - score;
            played[first, second]++;
            played[second, first]++;
        }
        var theta = new double[m];         // [version] log-strengths
        var gradient = new double[m];      // [version]
        var hessian = new double[m, m];    // [version, version] of the negated log-likelihood
        var trial = new double[m];         // [version]
        int fixedCount = prior > 0 ? 0 : Math.Min(1, m);  // without a prior only differences are identified
        double current = LogLikelihood(theta, wins, played, prior);
        for (int step = 0; step < 100; step++)
        {
            Array.Clear(hessian);
            for (int i = 0; i < m; i++)
            {
                double s = Sigmoid(theta[i]);
                gradient[i] = wins[i] + prior - 2 * prior * s;
                hessian[i, i] = 2 * prior * s * (1 - s);
                for (int j = 0; j < m; j++)
                {
                    if (j == i || played[i, j] == 0) continue;
                    double p = Sigmoid(theta[i] - theta[j]);
                    gradient[i] -= played[i, j] * p;
                    double curvature = played[i, j] * p * (1 - p);
                    hessian[i, i] += curvature;
                    hessian[i, j] -= curvature;
                }
            }
            double largest = 0;
            for (int i = fixedCount; i < m; i++) largest = Math.Max(largest, Math.Abs(gradient[i]));
            if (largest < 1e-10) break;
            var direction = Solve(hessian, gradient, fixedCount, m);
            if (direction is null) break;
            double size = 1, value = double.NegativeInfinity;
            for (int halving = 0; halving < 40; halving++, size /= 2)
            {
                for (int i = 0; i < m; i++) trial[i] = theta[i] + size * direction[i];
                value = LogLikelihood(trial, wins, played, prior);
                if (value >= current) break;
            }
            // No step raises the likelihood: the optimum is reached to rounding.
            if (!(value > current)) break;
            Array.Copy(trial, theta, m);
            current = value;
        }
        var ratings = theta.Select(t => Scale * t / Math.Log(10)).ToArray();
        double mean = m == 0 ? 0 : ratings.Average();
        for (int i = 0; i < m; i++) ratings[i] += MeanRating - mean;
        return ratings;
    }

    static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>log(e^a + e^b) without overflow.</summary>
    static double LogSumExp(double a, double b) => Math.Max(a, b) + Math.Log(1 + Math.Exp(-Math.Abs(a - b)));

    static double LogLikelihood(double[] theta, double[] wins, double[,] played, double prior)
    {
        int m = theta.Length;
        double value = 0;
        for (int i = 0; i < m; i++)
        {
            value += (wins[i] + prior) * theta[i] - 2 * prior * LogSumExp(theta[i], 0);
            for (int j = i + 1; j < m; j++)
                if (played[i, j] > 0) value -= played[i, j] * LogSumExp(theta[i], theta[j]);
        }
        return value;
    }

    /// <summary>Solves hessian·x = gradient over the versions from <paramref name="first"/> on (the rest held at 0) by Gaussian elimination; null when singular.</summary>
    static double[]? Solve(double[,] hessian, double[] gradient, int first, int m)
    {
        int n = m - first;
        var a = new double[n, n + 1];  // [row, column] augmented
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) a[i, j] = hessian[first + i, first + j];
            a[i, n] = gradient[first + i];
        }
        for (int column = 0; column < n; column++)
        {
            int pivot = column;
            for (int row = column + 1; row < n; row++)
                if (Math.Abs(a[row, column]) > Math.Abs(a[pivot, column])) pivot = row;
            if (Math.Abs(a[pivot, column]) < 1e-12) return null;
            if (pivot != column)
                for (int j = 0; j <= n; j++) (a[pivot, j], a[column, j]) = (a[column, j], a[pivot, j]);
            for (int row = column + 1; row < n; row++)
            {
                double factor = a[row, column] / a[column, column];
                for (int j = column; j <= n; j++) a[row, j] -= factor * a[column, j];
            }
        }
        var x = new double[m];
        for (int i = n - 1; i >= 0; i--)
        {
            double sum = a[i, n];
            for (int j = i + 1; j < n; j++) sum -= a[i, j] * x[first + j];
            x[first + i] = sum / a[i, i];
        }
        return x;
    }

    static double Quantile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }
}
