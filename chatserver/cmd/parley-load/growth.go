package main

import "fmt"

// tolerance is how much a soak series may grow between the mean of its first
// third of samples and that of its last third: the larger of rel × the first
// mean and abs. The first third includes warm-up (caches filling, pools
// opening), so a leak shows as a last third above it; noise (a churn round in
// flight at the sampling instant, GC timing) stays within these.
type tolerance struct {
	rel, abs float64
	unit     string
}

var (
	tolGoroutines = tolerance{rel: 0.10, abs: 25, unit: ""}
	tolHeap       = tolerance{rel: 0.25, abs: 8, unit: " MiB"}
	tolRSS        = tolerance{rel: 0.20, abs: 16, unit: " MiB"}
	tolFDs        = tolerance{rel: 0.05, abs: 20, unit: ""}
	tolRedis      = tolerance{abs: 4, unit: ""}
	tolPostgres   = tolerance{abs: 4, unit: ""}
)

func (t tolerance) String() string {
	switch {
	case t.rel == 0:
		return fmt.Sprintf("+%g%s", t.abs, t.unit)
	default:
		return fmt.Sprintf("+%g%% or +%g%s, the larger", t.rel*100, t.abs, t.unit)
	}
}

// growthCheck is the verdict on one series.
type growthCheck struct {
	Series    string  `json:"series"`
	Samples   int     `json:"samples"`
	First     float64 `json:"firstThirdMean"`
	Last      float64 `json:"lastThirdMean"`
	Limit     float64 `json:"limit"` // the largest last-third mean that passes
	Tolerance string  `json:"tolerance"`
	Pass      bool    `json:"pass"`
}

// checkGrowth compares the mean of the last third of series with that of
// the first third; fewer than 3 samples, or a sample that could not be read
// (negative: the sampler stores -1), cannot pass.
func checkGrowth(name string, series []float64, tol tolerance) growthCheck {
	c := growthCheck{Series: name, Samples: len(series), Tolerance: tol.String()}
	k := len(series) / 3
	if k == 0 {
		c.Tolerance = "fewer than 3 samples: no verdict"
		return c
	}
	missing := 0
	for _, v := range series {
		if v < 0 {
			missing++
		}
	}
	if missing > 0 {
		c.Tolerance = fmt.Sprintf("%d of %d samples could not be read: no verdict", missing, len(series))
		return c
	}
	c.First, c.Last = mean(series[:k]), mean(series[len(series)-k:])
	c.Limit = c.First + max(c.First*tol.rel, tol.abs)
	c.Pass = c.Last <= c.Limit
	return c
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// soakChecks are the checks of make soak: per replica goroutines, heap in
// use, RSS and open files; Redis clients and PostgreSQL connections when sampled.
func soakChecks(samples []soakSample, replicas int, redis, postgres bool) []growthCheck {
	series := func(f func(soakSample) float64) []float64 {
		out := make([]float64, len(samples))
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	var out []growthCheck
	for r := range replicas {
		rep := func(f func(replicaSample) float64) []float64 {
			return series(func(s soakSample) float64 {
				if r < len(s.Replicas) {
					return f(s.Replicas[r])
				}
				return -1
			})
		}
		name := fmt.Sprintf("replica %d ", r+1)
		out = append(out,
			checkGrowth(name+"goroutines", rep(func(x replicaSample) float64 { return x.Goroutines }), tolGoroutines),
			checkGrowth(name+"heap in use (MiB)", rep(func(x replicaSample) float64 { return x.HeapInuseMiB }), tolHeap),
			checkGrowth(name+"RSS (MiB)", rep(func(x replicaSample) float64 { return x.RSSMiB }), tolRSS),
			checkGrowth(name+"open files", rep(func(x replicaSample) float64 { return float64(x.FDs) }), tolFDs))
	}
	if redis {
		out = append(out, checkGrowth("Redis clients", series(func(s soakSample) float64 { return float64(s.RedisClients) }), tolRedis))
	}
	if postgres {
		out = append(out, checkGrowth("PostgreSQL connections", series(func(s soakSample) float64 { return float64(s.PGConns) }), tolPostgres))
	}
	return out
}
