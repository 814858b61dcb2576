package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Tenant schemas, in the YAML shape of package schema (schema.Tenant). They
// are declared here, not imported, so the generator does not depend on a
// package that other work changes.

type conversion struct {
	Scale  float64 `yaml:"scale"`
	Offset float64 `yaml:"offset,omitempty"`
}

type fieldDef struct {
	Name        string                `yaml:"name"`
	Type        string                `yaml:"type"`
	Aliases     []string              `yaml:"aliases,omitempty"`
	Conversions map[string]conversion `yaml:"conversions,omitempty"`
}

type metricDef struct {
	Name    string     `yaml:"name"`
	Aliases []string   `yaml:"aliases,omitempty"`
	Fields  []fieldDef `yaml:"fields"`
}

type tenantDef struct {
	Tenant        string      `yaml:"tenant"`
	MetricKeys    []string    `yaml:"metric_keys,omitempty"`
	TimestampKeys []string    `yaml:"timestamp_keys,omitempty"`
	Metrics       []metricDef `yaml:"metrics"`
}

// °F → °C: canonical = f*5/9 - 160/9.
var fahrenheit = conversion{Scale: 5.0 / 9.0, Offset: -160.0 / 9.0}

const (
	hpaPerInHg = 33.8639
	mmPerInch  = 25.4
)

var tenants = []tenantDef{
	{
		Tenant:        "harbor",
		MetricKeys:    []string{"metrictype"},
		TimestampKeys: []string{"timestamp", "ts"},
		Metrics: []metricDef{
			{Name: "weather", Aliases: []string{"wx"}, Fields: []fieldDef{
				{Name: "temperature", Type: "double", Aliases: []string{"temp_c"}, Conversions: map[string]conversion{"temp_f": fahrenheit}},
				{Name: "pressure", Type: "double", Aliases: []string{"press"}, Conversions: map[string]conversion{"press_inhg": {Scale: hpaPerInHg}}},
				{Name: "wind", Type: "double", Aliases: []string{"wind_ms"}},
				{Name: "station", Type: "string", Aliases: []string{"stn"}},
				{Name: "device", Type: "string", Aliases: []string{"dev"}},
				{Name: "seq", Type: "long", Aliases: []string{"sq"}},
			}},
			{Name: "daily_summary", Aliases: []string{"daily"}, Fields: []fieldDef{
				{Name: "temp_max", Type: "double", Aliases: []string{"tmax_c"}, Conversions: map[string]conversion{"tmax_f": fahrenheit}},
				{Name: "temp_min", Type: "double", Aliases: []string{"tmin_c"}, Conversions: map[string]conversion{"tmin_f": fahrenheit}},
				{Name: "precipitation", Type: "double", Aliases: []string{"precip"}, Conversions: map[string]conversion{"precip_in": {Scale: mmPerInch}}},
				{Name: "wind", Type: "double", Aliases: []string{"wind_ms"}},
				{Name: "condition", Type: "string", Aliases: []string{"cond"}},
				{Name: "station", Type: "string", Aliases: []string{"stn"}},
				{Name: "device", Type: "string", Aliases: []string{"dev"}},
				{Name: "seq", Type: "long", Aliases: []string{"sq"}},
			}},
		},
	},
	{
		// No metric_keys / timestamp_keys: the defaults (metrictype, timestamp) apply.
		Tenant: "skyline",
		Metrics: []metricDef{
			{Name: "flight", Aliases: []string{"flt"}, Fields: []fieldDef{
				{Name: "delay", Type: "long", Aliases: []string{"dly"}},
				{Name: "distance", Type: "long", Aliases: []string{"dist"}},
				{Name: "origin", Type: "string", Aliases: []string{"orig"}},
				{Name: "destination", Type: "string", Aliases: []string{"dest"}},
				{Name: "departed", Type: "timestamp", Aliases: []string{"dep_time"}},
				{Name: "device", Type: "string", Aliases: []string{"dev"}},
				{Name: "seq", Type: "long", Aliases: []string{"sq"}},
			}},
		},
	},
	{
		Tenant:        "quakenet",
		MetricKeys:    []string{"type"},
		TimestampKeys: []string{"ts", "time"},
		Metrics: []metricDef{
			{Name: "quake", Aliases: []string{"eq"}, Fields: []fieldDef{
				{Name: "magnitude", Type: "double", Aliases: []string{"mag"}},
				{Name: "depth_km", Type: "double", Aliases: []string{"depth"}, Conversions: map[string]conversion{"depth_m": {Scale: 0.001}}},
				{Name: "latitude", Type: "double", Aliases: []string{"lat"}},
				{Name: "longitude", Type: "double", Aliases: []string{"lon"}},
				{Name: "place", Type: "string", Aliases: []string{"loc"}},
				{Name: "significance", Type: "long", Aliases: []string{"sig"}},
				{Name: "tsunami", Type: "boolean", Aliases: []string{"tsu"}},
				{Name: "network", Type: "string", Aliases: []string{"net"}},
				{Name: "device", Type: "string", Aliases: []string{"dev"}},
				{Name: "seq", Type: "long", Aliases: []string{"sq"}},
			}},
		},
	},
}

// Tenant ids that are valid but have no schema (unknown_tenant).
var ghostTenants = []string{"ghostfleet", "acme-legacy", "harbor2"}

// event is one generated event with what the generator knows about it.
type event struct {
	o         obj
	tenant    string
	metric    string // canonical metric name
	metricKey string
	tsKey     string
	tsFormat  string   // epoch_s | epoch_ms | epoch_us | epoch_ns | rfc3339
	numKeys   []string // keys of declared double/long fields holding numbers
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// generator state that the event builders share.
type builder struct {
	r   *rand.Rand
	src *sources
	seq map[string]int64 // per-tenant sequence number: keeps every event distinct
}

func (b *builder) nextSeq(tenant string) int64 {
	b.seq[tenant]++
	return b.seq[tenant]
}

// newTS encodes t as a NEW-generation device would (epoch ms or RFC 3339).
func newTS(r *rand.Rand, t time.Time, allowMillis bool, frac bool) (any, string) {
	if allowMillis && r.IntN(2) == 0 {
		return t.UnixMilli(), "epoch_ms"
	}
	if frac {
		return t.UTC().Format("2006-01-02T15:04:05.000Z07:00"), "rfc3339"
	}
	return t.UTC().Format(time.RFC3339), "rfc3339"
}

// oldTS encodes t as an OLD-generation device would: epoch seconds, some in
// microseconds or nanoseconds (pSub is the share of those).
func oldTS(r *rand.Rand, t time.Time, pSub float64) (any, string) {
	x := r.Float64()
	switch {
	case x < pSub/2:
		return t.UnixMicro(), "epoch_us"
	case x < pSub:
		return t.UnixNano(), "epoch_ns"
	}
	return t.Unix(), "epoch_s"
}

// build makes one valid event of the tenant, of the given generation.
func (b *builder) build(tenant string, old bool) (event, error) {
	r := b.r
	seq := b.nextSeq(tenant)
	gen := "n"
	if old {
		gen = "o"
	}
	switch tenant {
	case "harbor":
		if r.IntN(100) < 65 {
			h := b.src.nextHourly()
			dev := fmt.Sprintf("harbor-sea-%s%02d", gen, seq%7)
			if !old {
				ts, f := newTS(r, h.t, true, false)
				return event{o: obj{{"metrictype", "weather"}, {"timestamp", ts}, {"station", "SEA"}, {"device", dev}, {"seq", seq},
					{"temperature", h.temperature}, {"pressure", h.pressure}, {"wind", h.wind}},
					tenant: tenant, metric: "weather", metricKey: "metrictype", tsKey: "timestamp", tsFormat: f,
					numKeys: []string{"temperature", "pressure", "wind"}}, nil
			}
			ts, f := oldTS(r, h.t, 0.3)
			o := obj{{"metrictype", "wx"}, {"ts", ts}, {"stn", "SEA"}, {"dev", dev}, {"sq", seq}}
			tk, pk := "temp_c", "press"
			if r.IntN(2) == 0 {
				o = append(o, kv{"temp_f", round(h.temperature*1.8+32, 2)})
				tk = "temp_f"
			} else {
				o = append(o, kv{"temp_c", h.temperature})
			}
			if r.IntN(3) == 0 {
				o = append(o, kv{"press_inhg", round(h.pressure/hpaPerInHg, 3)})
				pk = "press_inhg"
			} else {
				o = append(o, kv{"press", h.pressure})
			}
			o = append(o, kv{"wind_ms", h.wind})
			return event{o: o, tenant: tenant, metric: "weather", metricKey: "metrictype", tsKey: "ts", tsFormat: f,
				numKeys: []string{tk, pk, "wind_ms"}}, nil
		}
		d := b.src.nextDaily()
		stn := strings.ReplaceAll(strings.ToLower(d.location), " ", "-")
		dev := fmt.Sprintf("harbor-%s-%s%02d", stn, gen, seq%5)
		if !old {
			ts, f := newTS(r, d.t, true, false)
			return event{o: obj{{"metrictype", "daily_summary"}, {"timestamp", ts}, {"station", stn}, {"device", dev}, {"seq", seq},
				{"temp_max", d.tmax}, {"temp_min", d.tmin}, {"precipitation", d.precip}, {"wind", d.wind}, {"condition", d.weather}},
				tenant: tenant, metric: "daily_summary", metricKey: "metrictype", tsKey: "timestamp", tsFormat: f,
				numKeys: []string{"temp_max", "temp_min", "precipitation", "wind"}}, nil
		}
		ts, f := oldTS(r, d.t, 0.3)
		o := obj{{"metrictype", "daily"}, {"ts", ts}, {"stn", stn}, {"dev", dev}, {"sq", seq}}
		var nk []string
		if r.IntN(2) == 0 {
			o = append(o, kv{"tmax_f", round(d.tmax*1.8+32, 2)}, kv{"tmin_f", round(d.tmin*1.8+32, 2)})
			nk = append(nk, "tmax_f", "tmin_f")
		} else {
			o = append(o, kv{"tmax_c", d.tmax}, kv{"tmin_c", d.tmin})
			nk = append(nk, "tmax_c", "tmin_c")
		}
		if r.IntN(2) == 0 {
			o = append(o, kv{"precip_in", round(d.precip/mmPerInch, 3)})
			nk = append(nk, "precip_in")
		} else {
			o = append(o, kv{"precip", d.precip})
			nk = append(nk, "precip")
		}
		o = append(o, kv{"wind_ms", d.wind}, kv{"cond", d.weather})
		return event{o: o, tenant: tenant, metric: "daily_summary", metricKey: "metrictype", tsKey: "ts", tsFormat: f,
			numKeys: append(nk, "wind_ms")}, nil

	case "skyline":
		fl, err := b.src.flights.next()
		if err != nil {
			return event{}, err
		}
		dev := fmt.Sprintf("skyline-%s-%s", strings.ToLower(fl.origin), gen)
		if !old {
			// 2001 data: epoch ms (9.8e11) would sit on the s/ms magnitude
			// boundary of some detectors, so new devices send RFC 3339 only.
			t := fl.t.UTC().Format(time.RFC3339)
			return event{o: obj{{"metrictype", "flight"}, {"timestamp", t}, {"device", dev}, {"seq", seq}, {"origin", fl.origin},
				{"destination", fl.dest}, {"delay", fl.delay}, {"distance", fl.distance}, {"departed", t}},
				tenant: tenant, metric: "flight", metricKey: "metrictype", tsKey: "timestamp", tsFormat: "rfc3339",
				numKeys: []string{"delay", "distance"}}, nil
		}
		s := fl.t.Unix()
		return event{o: obj{{"metrictype", "flt"}, {"timestamp", s}, {"dev", dev}, {"sq", seq}, {"orig", fl.origin},
			{"dest", fl.dest}, {"dly", fl.delay}, {"dist", fl.distance}, {"dep_time", s}},
			tenant: tenant, metric: "flight", metricKey: "metrictype", tsKey: "timestamp", tsFormat: "epoch_s",
			numKeys: []string{"dly", "dist"}}, nil

	case "quakenet":
		q := b.src.nextQuake()
		dev := fmt.Sprintf("quakenet-%s-%s%02d", q.net, gen, seq%3)
		if !old {
			ts, f := newTS(r, q.t, true, true)
			return event{o: obj{{"type", "quake"}, {"ts", ts}, {"device", dev}, {"seq", seq}, {"magnitude", q.mag},
				{"depth_km", q.depth}, {"latitude", q.lat}, {"longitude", q.lon}, {"place", q.place},
				{"significance", q.sig}, {"tsunami", q.tsunami}, {"network", q.net}},
				tenant: tenant, metric: "quake", metricKey: "type", tsKey: "ts", tsFormat: f,
				numKeys: []string{"magnitude", "depth_km", "significance"}}, nil
		}
		ts, f := oldTS(r, q.t, 0.4)
		o := obj{{"type", "eq"}, {"time", ts}, {"dev", dev}, {"sq", seq}, {"mag", q.mag}}
		dk := "depth"
		if r.IntN(2) == 0 {
			o = append(o, kv{"depth_m", round(q.depth*1000, 1)})
			dk = "depth_m"
		} else {
			o = append(o, kv{"depth", q.depth})
		}
		o = append(o, kv{"lat", q.lat}, kv{"lon", q.lon}, kv{"loc", q.place}, kv{"sig", q.sig}, kv{"tsu", q.tsunami}, kv{"net", q.net})
		return event{o: o, tenant: tenant, metric: "quake", metricKey: "type", tsKey: "time", tsFormat: f,
			numKeys: []string{"mag", dk, "sig"}}, nil
	}
	return event{}, fmt.Errorf("no builder for tenant %q", tenant)
}
