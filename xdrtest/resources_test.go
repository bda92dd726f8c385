package xdrtest_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/xdrretry/xdrretry/xdrtest"
)

type odataList[T any] struct {
	Context string `json:"@odata.context"`
	Value   []T    `json:"value"`
}

type odataEntity struct {
	Context string `json:"@odata.context"`
}

var (
	machineIDPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)
	alertIDPattern   = regexp.MustCompile(`^da[0-9]{18}_-?[0-9]+$`)
)

func TestMachines(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	machines := srv.Machines()

	t.Run("list", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/machines", token, "")
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		list := decodeJSON[odataList[xdrtest.Machine]](t, r.body)
		if !strings.HasSuffix(list.Context, "$metadata#Machines") {
			t.Errorf("@odata.context = %q, want it to end in $metadata#Machines", list.Context)
		}
		if len(list.Value) != len(machines) || len(machines) < 3 {
			t.Fatalf("got %d machines, Machines() has %d, want at least 3", len(list.Value), len(machines))
		}
		for i, m := range list.Value {
			if m.ID != machines[i].ID {
				t.Errorf("machine %d: id = %q, want %q", i, m.ID, machines[i].ID)
			}
			if !machineIDPattern.MatchString(m.ID) {
				t.Errorf("machine %d: id = %q, want 40 hex digits", i, m.ID)
			}
			if m.ComputerDNSName == "" || m.OSPlatform == "" || m.HealthStatus == "" {
				t.Errorf("machine %d has empty properties: %+v", i, m)
			}
		}
	})

	t.Run("same on every server", func(t *testing.T) {
		other := xdrtest.NewServer()
		defer other.Close()
		if got, want := other.Machines()[0].ID, machines[0].ID; got != want {
			t.Errorf("first machine ID on a second server = %q, want %q", got, want)
		}
	})

	t.Run("get", func(t *testing.T) {
		for _, id := range []string{machines[1].ID, strings.ToUpper(machines[1].ID)} {
			r := send(t, client, "GET", srv.URL+"/api/machines/"+id, token, "")
			if r.status != 200 {
				t.Fatalf("GET %s: status = %d, want 200", id, r.status)
			}
			m := decodeJSON[xdrtest.Machine](t, r.body)
			if m.ID != machines[1].ID {
				t.Errorf("GET %s: id = %q, want %q", id, m.ID, machines[1].ID)
			}
			ctx := decodeJSON[odataEntity](t, r.body).Context
			if !strings.HasSuffix(ctx, "$metadata#Machines/$entity") {
				t.Errorf("@odata.context = %q, want it to end in $metadata#Machines/$entity", ctx)
			}
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/machines/nope", token, "")
		env := checkError(t, r, 404, "NotFound")
		if want := "Machine 'nope' was not found"; env.Error.Message != want {
			t.Errorf("message = %q, want %q", env.Error.Message, want)
		}
	})
}

func TestAlerts(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	alerts := srv.Alerts()
	machineIDs := map[string]bool{}
	for _, m := range srv.Machines() {
		machineIDs[m.ID] = true
	}

	t.Run("list", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/alerts", token, "")
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		list := decodeJSON[odataList[xdrtest.Alert]](t, r.body)
		if !strings.HasSuffix(list.Context, "$metadata#Alerts") {
			t.Errorf("@odata.context = %q, want it to end in $metadata#Alerts", list.Context)
		}
		if len(list.Value) != len(alerts) || len(alerts) < 3 {
			t.Fatalf("got %d alerts, Alerts() has %d, want at least 3", len(list.Value), len(alerts))
		}
		seen := map[string]bool{}
		for i, a := range list.Value {
			if !alertIDPattern.MatchString(a.ID) {
				t.Errorf("alert %d: id = %q, want the da<digits>_<number> form", i, a.ID)
			}
			if seen[a.ID] {
				t.Errorf("alert %d: id %q repeats", i, a.ID)
			}
			seen[a.ID] = true
			if !machineIDs[a.MachineID] {
				t.Errorf("alert %d: machineId %q is not a fixed machine", i, a.MachineID)
			}
			if a.Title == "" || a.Severity == "" || a.Status == "" {
				t.Errorf("alert %d has empty properties: %+v", i, a)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/alerts/"+alerts[2].ID, token, "")
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		if a := decodeJSON[xdrtest.Alert](t, r.body); a.ID != alerts[2].ID {
			t.Errorf("id = %q, want %q", a.ID, alerts[2].ID)
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/alerts/da000_1", token, "")
		env := checkError(t, r, 404, "NotFound")
		if !strings.Contains(env.Error.Message, "da000_1") {
			t.Errorf("message = %q, want it to name the alert ID", env.Error.Message)
		}
	})
}

func TestAdvancedQuery(t *testing.T) {
	srv, token := start(t)
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"valid", `{"Query":"DeviceInfo | take 5"}`, 200, ""},
		{"missing body", "", 400, "InvalidRequestBody"},
		{"blank body", "  \n", 400, "InvalidRequestBody"},
		{"invalid JSON", `{"Query":`, 400, "InvalidRequestBody"},
		{"not an object", `["DeviceInfo"]`, 400, "InvalidRequestBody"},
		{"null body", `null`, 400, "InvalidRequestBody"},
		{"wrong-case field", `{"query":"DeviceInfo"}`, 400, "InvalidRequestBody"},
		{"unknown field", `{"Query":"DeviceInfo","Timeout":5}`, 400, "InvalidRequestBody"},
		{"Query not a string", `{"Query":5}`, 400, "InvalidRequestBody"},
		{"missing Query", `{}`, 400, "MissingRequiredParameter"},
		{"null Query", `{"Query":null}`, 400, "MissingRequiredParameter"},
		{"empty Query", `{"Query":""}`, 400, "MissingRequiredParameter"},
		{"blank Query", `{"Query":"  "}`, 400, "MissingRequiredParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, srv.Client(), "POST", srv.URL+"/api/advancedqueries/run", token, tt.body)
			if tt.wantCode != "" {
				checkError(t, r, tt.wantStatus, tt.wantCode)
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			result := decodeJSON[struct {
				Schema []struct {
					Name string
					Type string
				}
				Results []map[string]any
			}](t, r.body)
			if len(result.Schema) == 0 {
				t.Error("Schema is empty")
			}
			if len(result.Results) == 0 {
				t.Fatal("Results is empty")
			}
			for _, col := range result.Schema {
				if _, ok := result.Results[0][col.Name]; !ok {
					t.Errorf("first row lacks the column %q of the schema", col.Name)
				}
			}
		})
	}
}

func TestIsolate(t *testing.T) {
	srv, token := start(t)
	machines := srv.Machines()
	isolate := func(t *testing.T, machineID, body string) reply {
		t.Helper()
		return send(t, srv.Client(), "POST", srv.URL+"/api/machines/"+machineID+"/isolate", token, body)
	}

	invalid := []struct {
		name     string
		machine  string
		body     string
		status   int
		wantCode string
	}{
		{"missing body", machines[0].ID, "", 400, "InvalidRequestBody"},
		{"invalid JSON", machines[0].ID, `{"Comment":"x"`, 400, "InvalidRequestBody"},
		{"wrong-case comment", machines[0].ID, `{"comment":"x","IsolationType":"Full"}`, 400, "InvalidRequestBody"},
		{"wrong-case isolation type", machines[0].ID, `{"Comment":"x","isolationType":"Full"}`, 400, "InvalidRequestBody"},
		{"missing Comment", machines[0].ID, `{"IsolationType":"Full"}`, 400, "MissingRequiredParameter"},
		{"empty Comment", machines[0].ID, `{"Comment":""}`, 400, "MissingRequiredParameter"},
		{"Comment not a string", machines[0].ID, `{"Comment":true}`, 400, "InvalidRequestBody"},
		{"invalid IsolationType", machines[0].ID, `{"Comment":"x","IsolationType":"Partial"}`, 400, "InvalidRequestBody"},
		{"unknown machine", "0000", `{"Comment":"x"}`, 404, "NotFound"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, isolate(t, tt.machine, tt.body), tt.status, tt.wantCode)
		})
	}
	if n := len(srv.MachineActions()); n != 0 {
		t.Fatalf("invalid requests created %d machine actions, want 0", n)
	}

	var first xdrtest.MachineAction
	t.Run("created", func(t *testing.T) {
		r := isolate(t, machines[0].ID, `{"Comment":"Isolate for investigation","IsolationType":"Selective"}`)
		if r.status != 201 {
			t.Fatalf("status = %d, want 201; body %s", r.status, r.body)
		}
		first = decodeJSON[xdrtest.MachineAction](t, r.body)
		if !uuidV4.MatchString(first.ID) {
			t.Errorf("id = %q, want a UUID", first.ID)
		}
		if first.Type != "Isolate" {
			t.Errorf("type = %q, want Isolate", first.Type)
		}
		if first.Status != xdrtest.ActionPending {
			t.Errorf("status = %q, want Pending", first.Status)
		}
		if first.MachineID != machines[0].ID {
			t.Errorf("machineId = %q, want %q", first.MachineID, machines[0].ID)
		}
		if first.RequestorComment != "Isolate for investigation" {
			t.Errorf("requestorComment = %q, want the request's Comment", first.RequestorComment)
		}
		if first.Requestor != xdrtest.Requestor {
			t.Errorf("requestor = %q, want %q", first.Requestor, xdrtest.Requestor)
		}
		if first.Scope == nil || *first.Scope != "Selective" {
			t.Errorf("scope = %v, want Selective", first.Scope)
		}
		if first.CreationDateTimeUTC.IsZero() {
			t.Error("creationDateTimeUtc is zero")
		}
	})

	t.Run("second while pending", func(t *testing.T) {
		env := checkError(t, isolate(t, machines[0].ID, `{"Comment":"again"}`), 400, "ActiveRequestAlreadyExists")
		if !strings.Contains(env.Error.Message, machines[0].ID) {
			t.Errorf("message = %q, want it to name the machine", env.Error.Message)
		}
	})

	t.Run("other machine", func(t *testing.T) {
		r := isolate(t, machines[1].ID, `{"Comment":"other"}`)
		if r.status != 201 {
			t.Fatalf("status = %d, want 201; body %s", r.status, r.body)
		}
		a := decodeJSON[xdrtest.MachineAction](t, r.body)
		if a.Scope == nil || *a.Scope != "Full" {
			t.Errorf("scope = %v, want the default Full", a.Scope)
		}
	})

	t.Run("after completion", func(t *testing.T) {
		if !srv.SetActionStatus(first.ID, xdrtest.ActionSucceeded) {
			t.Fatalf("SetActionStatus(%q) = false, want true", first.ID)
		}
		r := isolate(t, machines[0].ID, `{"Comment":"isolate again"}`)
		if r.status != 201 {
			t.Errorf("status = %d, want 201; body %s", r.status, r.body)
		}
	})

	if srv.SetActionStatus("no-such-action", xdrtest.ActionFailed) {
		t.Error("SetActionStatus of an unknown action = true, want false")
	}
}

func TestOffboard(t *testing.T) {
	srv, token := start(t)
	machine := srv.Machines()[2]
	url := srv.URL + "/api/machines/" + machine.ID + "/offboard"

	checkError(t, send(t, srv.Client(), "POST", url, token, `{}`), 400, "MissingRequiredParameter")
	checkError(t, send(t, srv.Client(), "POST", url, token, `{"Comment":"x","IsolationType":"Full"}`), 400, "InvalidRequestBody")

	r := send(t, srv.Client(), "POST", url, token, `{"Comment":"Decommissioned"}`)
	if r.status != 201 {
		t.Fatalf("status = %d, want 201; body %s", r.status, r.body)
	}
	a := decodeJSON[xdrtest.MachineAction](t, r.body)
	if a.Type != "Offboard" {
		t.Errorf("type = %q, want Offboard", a.Type)
	}
	if a.Status != xdrtest.ActionPending {
		t.Errorf("status = %q, want Pending", a.Status)
	}
	if a.MachineID != machine.ID {
		t.Errorf("machineId = %q, want %q", a.MachineID, machine.ID)
	}
	if a.Scope != nil {
		t.Errorf("scope = %q, want null", *a.Scope)
	}
}

func TestMachineActions(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	machines := srv.Machines()
	var created []xdrtest.MachineAction
	for _, m := range machines[:2] {
		r := send(t, client, "POST", srv.URL+"/api/machines/"+m.ID+"/isolate", token, `{"Comment":"c"}`)
		created = append(created, decodeJSON[xdrtest.MachineAction](t, r.body))
	}

	t.Run("list", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/machineactions", token, "")
		list := decodeJSON[odataList[xdrtest.MachineAction]](t, r.body)
		if !strings.HasSuffix(list.Context, "$metadata#MachineActions") {
			t.Errorf("@odata.context = %q", list.Context)
		}
		if len(list.Value) != len(created) {
			t.Fatalf("got %d actions, want %d", len(list.Value), len(created))
		}
		for i := range created {
			if list.Value[i].ID != created[i].ID {
				t.Errorf("action %d: id = %q, want %q", i, list.Value[i].ID, created[i].ID)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		srv.SetActionStatus(created[1].ID, xdrtest.ActionSucceeded)
		r := send(t, client, "GET", srv.URL+"/api/machineactions/"+created[1].ID, token, "")
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		a := decodeJSON[xdrtest.MachineAction](t, r.body)
		if a.ID != created[1].ID {
			t.Errorf("id = %q, want %q", a.ID, created[1].ID)
		}
		if a.Status != xdrtest.ActionSucceeded {
			t.Errorf("status = %q, want Succeeded after SetActionStatus", a.Status)
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		r := send(t, client, "GET", srv.URL+"/api/machineactions/unknown", token, "")
		checkError(t, r, 404, "NotFound")
	})
}

func TestUnknownPathAndMethod(t *testing.T) {
	srv, token := start(t)
	machineID := srv.Machines()[0].ID
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string
		wantAllow    string
	}{
		{"GET", "/api/unknown", 404, "NotFound", ""},
		{"GET", "/", 404, "NotFound", ""},
		{"GET", "/api/machines/", 404, "NotFound", ""},
		{"GET", "/api/machines/" + machineID + "/isolate/extra", 404, "NotFound", ""},
		{"DELETE", "/api/machines/" + machineID, 405, "MethodNotAllowed", "GET"},
		{"POST", "/api/machines", 405, "MethodNotAllowed", "GET"},
		{"GET", "/api/machines/" + machineID + "/isolate", 405, "MethodNotAllowed", "POST"},
		{"PUT", "/api/advancedqueries/run", 405, "MethodNotAllowed", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := send(t, srv.Client(), tt.method, srv.URL+tt.path, token, "")
			checkError(t, r, tt.wantStatus, tt.wantCode)
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestPathsMatchCaseInsensitively(t *testing.T) {
	srv, token := start(t)
	r := send(t, srv.Client(), "GET", srv.URL+"/API/Machines", token, "")
	if r.status != 200 {
		t.Errorf("GET /API/Machines: status = %d, want 200", r.status)
	}
}
