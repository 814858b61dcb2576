package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Rows of the real data sets. Every source is cyclic: when it runs out it
// starts again at its first row (the generator's per-device sequence number
// keeps the events of a second pass distinct).

type hourlyRow struct { // seattle-weather-hourly-normals.csv
	t                           time.Time
	pressure, temperature, wind float64
}

type dailyRow struct { // weather.csv
	location                 string
	t                        time.Time
	precip, tmax, tmin, wind float64
	weather                  string
}

type flightRow struct { // flights-3m.parquet
	t               time.Time
	delay, distance int64
	origin, dest    string
}

type quakeRow struct { // earthquakes.json
	t               time.Time
	mag             float64
	place           string
	lon, lat, depth float64
	sig             int64
	tsunami         bool
	net, code       string
}

type sources struct {
	name       string // "vega-datasets@3.2.1" or "fallback"
	hourly     []hourlyRow
	daily      []dailyRow
	quakes     []quakeRow
	flights    flightSource
	hi, di, qi int
}

func (s *sources) nextHourly() hourlyRow {
	r := s.hourly[s.hi%len(s.hourly)]
	s.hi++
	return r
}

func (s *sources) nextDaily() dailyRow {
	r := s.daily[s.di%len(s.daily)]
	s.di++
	return r
}

func (s *sources) nextQuake() quakeRow {
	r := s.quakes[s.qi%len(s.quakes)]
	s.qi++
	return r
}

type flightSource interface {
	next() (flightRow, error)
	Close() error
}

// openSources opens the data directory, or falls back to the embedded rows
// when dir holds none of the files.
func openSources(dir string) (*sources, error) {
	if _, err := os.Stat(filepath.Join(dir, "flights-3m.parquet")); err != nil {
		return fallbackSources()
	}
	s := &sources{name: "vega-datasets@3.2.1"}
	var err error
	if s.hourly, err = readHourly(filepath.Join(dir, "seattle-weather-hourly-normals.csv"), nil); err != nil {
		return nil, err
	}
	if s.daily, err = readDaily(filepath.Join(dir, "weather.csv"), nil); err != nil {
		return nil, err
	}
	if s.quakes, err = readQuakes(filepath.Join(dir, "earthquakes.json")); err != nil {
		return nil, err
	}
	if s.flights, err = openParquetFlights(filepath.Join(dir, "flights-3m.parquet")); err != nil {
		return nil, err
	}
	return s, nil
}

func fallbackSources() (*sources, error) {
	s := &sources{name: "fallback"}
	var err error
	if s.hourly, err = readHourly("", strings.NewReader(fallbackHourly)); err != nil {
		return nil, err
	}
	if s.daily, err = readDaily("", strings.NewReader(fallbackDaily)); err != nil {
		return nil, err
	}
	if s.quakes, err = parseFallbackQuakes(fallbackQuakes); err != nil {
		return nil, err
	}
	fl, err := parseFallbackFlights(fallbackFlights)
	if err != nil {
		return nil, err
	}
	s.flights = &sliceFlights{rows: fl}
	return s, nil
}

func readCSV(path string, r io.Reader) ([][]string, error) {
	if r == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return recs[1:], nil
}

func pf(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("bad number %q", s))
	}
	return v
}

func readHourly(path string, r io.Reader) ([]hourlyRow, error) {
	recs, err := readCSV(path, r)
	if err != nil {
		return nil, err
	}
	out := make([]hourlyRow, 0, len(recs))
	for _, c := range recs {
		t, err := time.Parse("2006-01-02T15:04:05", c[0])
		if err != nil {
			return nil, err
		}
		out = append(out, hourlyRow{t: t, pressure: pf(c[1]), temperature: pf(c[2]), wind: pf(c[3])})
	}
	return out, nil
}

func readDaily(path string, r io.Reader) ([]dailyRow, error) {
	recs, err := readCSV(path, r)
	if err != nil {
		return nil, err
	}
	out := make([]dailyRow, 0, len(recs))
	for _, c := range recs {
		t, err := time.Parse("2006-01-02", c[1])
		if err != nil {
			return nil, err
		}
		out = append(out, dailyRow{location: c[0], t: t, precip: pf(c[2]), tmax: pf(c[3]), tmin: pf(c[4]), wind: pf(c[5]), weather: c[6]})
	}
	// The file lists one station after the other; interleave them by day.
	sort.SliceStable(out, func(i, j int) bool { return out[i].t.Before(out[j].t) })
	return out, nil
}

func readQuakes(path string) ([]quakeRow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fc struct {
		Features []struct {
			Properties struct {
				Mag     *float64 `json:"mag"`
				Place   string   `json:"place"`
				Time    int64    `json:"time"`
				Sig     int64    `json:"sig"`
				Tsunami int      `json:"tsunami"`
				Net     string   `json:"net"`
				Code    string   `json:"code"`
			} `json:"properties"`
			Geometry struct {
				Coordinates []float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []quakeRow
	for _, f := range fc.Features {
		p := f.Properties
		c := f.Geometry.Coordinates
		if p.Mag == nil || len(c) < 3 {
			continue
		}
		out = append(out, quakeRow{t: time.UnixMilli(p.Time).UTC(), mag: *p.Mag, place: p.Place, lon: c[0], lat: c[1], depth: c[2],
			sig: p.Sig, tsunami: p.Tsunami != 0, net: p.Net, code: p.Code})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no features", path)
	}
	return out, nil
}

func parseFallbackQuakes(s string) ([]quakeRow, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")[1:]
	out := make([]quakeRow, 0, len(lines))
	for _, l := range lines {
		c := strings.Split(l, "|")
		if len(c) != 10 {
			return nil, fmt.Errorf("fallback quake row %q", l)
		}
		ms, _ := strconv.ParseInt(c[0], 10, 64)
		sig, _ := strconv.ParseInt(c[6], 10, 64)
		out = append(out, quakeRow{t: time.UnixMilli(ms).UTC(), mag: pf(c[1]), place: c[2], lon: pf(c[3]), lat: pf(c[4]), depth: pf(c[5]),
			sig: sig, tsunami: c[7] != "0", net: c[8], code: c[9]})
	}
	return out, nil
}

func parseFallbackFlights(s string) ([]flightRow, error) {
	recs, err := readCSV("fallback flights", strings.NewReader(s))
	if err != nil {
		return nil, err
	}
	out := make([]flightRow, 0, len(recs))
	for _, c := range recs {
		t, err := time.Parse("2006/01/02 15:04", c[0])
		if err != nil {
			return nil, err
		}
		d, _ := strconv.ParseInt(c[1], 10, 64)
		dist, _ := strconv.ParseInt(c[2], 10, 64)
		out = append(out, flightRow{t: t, delay: d, distance: dist, origin: c[3], dest: c[4]})
	}
	return out, nil
}

type sliceFlights struct {
	rows []flightRow
	i    int
}

func (s *sliceFlights) next() (flightRow, error) {
	r := s.rows[s.i%len(s.rows)]
	s.i++
	return r, nil
}

func (s *sliceFlights) Close() error { return nil }

// parquetFlight mirrors the columns of flights-3m.parquet. The date column is
// a TIMESTAMP(MICROS, not adjusted to UTC); it is read as its raw int64.
type parquetFlight struct {
	Date        int64  `parquet:"date,optional"`
	Delay       int64  `parquet:"delay,optional"`
	Distance    int64  `parquet:"distance,optional"`
	Origin      string `parquet:"origin,optional"`
	Destination string `parquet:"destination,optional"`
}

// parquetFlights streams flights-3m.parquet a small buffer at a time (the
// reader decodes one page of each column chunk at a time, row group after
// row group), so memory stays constant whatever -n is. At the end of the
// file it starts again from the first row.
type parquetFlights struct {
	f    *os.File
	r    *parquet.GenericReader[parquetFlight]
	buf  []parquetFlight
	n, i int
}

func openParquetFlights(path string) (*parquetFlights, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	p := &parquetFlights{f: f, buf: make([]parquetFlight, 512)}
	if err := p.reopen(); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func (p *parquetFlights) reopen() error {
	st, err := p.f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(p.f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", p.f.Name(), err)
	}
	if p.r != nil {
		p.r.Close()
	}
	p.r = parquet.NewGenericReader[parquetFlight](pf)
	p.n, p.i = 0, 0
	return nil
}

func (p *parquetFlights) next() (flightRow, error) {
	for p.i >= p.n {
		n, err := p.r.Read(p.buf)
		p.n, p.i = n, 0
		if n > 0 {
			break
		}
		if err == io.EOF {
			if err := p.reopen(); err != nil {
				return flightRow{}, err
			}
			continue
		}
		if err != nil {
			return flightRow{}, err
		}
	}
	r := p.buf[p.i]
	p.i++
	return flightRow{t: time.UnixMicro(r.Date).UTC(), delay: r.Delay, distance: r.Distance, origin: r.Origin, dest: r.Destination}, nil
}

func (p *parquetFlights) Close() error {
	if p.r != nil {
		p.r.Close()
	}
	return p.f.Close()
}
