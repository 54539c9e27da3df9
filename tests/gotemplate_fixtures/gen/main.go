// Command gen renders every case of ../cases.json with Go's own text/template and writes
// what Go produced (output, or parse/exec error message) to ../expected.json.
//
// Run from this directory: go run main.go
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

// HP and Data mirror the data Katib v1alpha3 gives trial templates.
type HP struct{ Name, Value string }

type Data struct {
	Trial, NameSpace, Experiment string
	HyperParameters              []HP
}

type Case struct {
	Name     string          `json:"name"`
	Template string          `json:"template"`
	TName    string          `json:"tname"`
	Data     json.RawMessage `json:"data"`
}

type Result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
	Phase  string  `json:"phase,omitempty"`
}

func katibData() Data {
	return Data{
		Trial: "random-example-58tbx6xc", NameSpace: "kubeflow", Experiment: "random-example",
		HyperParameters: []HP{{"--lr", "0.0274"}, {"--num-layers", "4"}, {"--optimizer", "sgd"}},
	}
}

// plain turns json.Number into int (if integral) or float64, recursively.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, err := x.Float64()
		if err != nil {
			panic(err)
		}
		return f
	case []any:
		for i := range x {
			x[i] = plain(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = plain(x[k])
		}
	}
	return v
}

func decodeData(raw json.RawMessage) any {
	if len(raw) == 0 {
		return katibData()
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var spec any
	if err := dec.Decode(&spec); err != nil {
		panic(err)
	}
	switch s := spec.(type) {
	case string:
		switch s {
		case "katib":
			return katibData()
		case "katib-empty":
			d := katibData()
			d.HyperParameters = []HP{}
			return d
		case "nil":
			return nil
		}
	case map[string]any:
		if m, ok := s["map"]; ok {
			return plain(m)
		}
		if k, ok := s["katib"]; ok {
			var d Data
			b, _ := json.Marshal(k)
			if err := json.Unmarshal(b, &d); err != nil {
				panic(err)
			}
			if d.HyperParameters == nil {
				d.HyperParameters = []HP{}
			}
			return d
		}
	}
	panic(fmt.Sprintf("bad data spec %s", raw))
}

func run(c Case) Result {
	name := c.TName
	if name == "" {
		name = "trial"
	}
	t, err := template.New(name).Parse(c.Template)
	if err != nil {
		msg := err.Error()
		return Result{Error: &msg, Phase: "parse"}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, decodeData(c.Data)); err != nil {
		msg := err.Error()
		return Result{Error: &msg, Phase: "exec"}
	}
	out := buf.String()
	return Result{Output: &out}
}

func main() {
	raw, err := os.ReadFile("../cases.json")
	if err != nil {
		panic(err)
	}
	var cases []Case
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	results := map[string]Result{}
	for _, c := range cases {
		if _, dup := results[c.Name]; dup {
			panic("duplicate case name " + c.Name)
		}
		results[c.Name] = run(c)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(results); err != nil {
		panic(err)
	}
	if err := os.WriteFile("../expected.json", out.Bytes(), 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("%d cases written to ../expected.json\n", len(results))
}
