package xdrtest

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// odataBase is the prefix of the "@odata.context" values, as in the responses
// of Microsoft Learn's "OData queries with Microsoft Defender for Endpoint".
const odataBase = "https://api.securitycenter.microsoft.com/api/$metadata#"

// TenantID is the Microsoft Entra tenant ID in the fake resources.
const TenantID = "7d2f6a0c-3b1e-4c59-9a8e-2f4b6c1d0e93"

// Machine is a device, in the JSON shape of the Defender for Endpoint
// machine entity (a subset of its properties).
type Machine struct {
	ID                    string    `json:"id"`
	ComputerDNSName       string    `json:"computerDnsName"`
	FirstSeen             time.Time `json:"firstSeen"`
	LastSeen              time.Time `json:"lastSeen"`
	OSPlatform            string    `json:"osPlatform"`
	OSVersion             string    `json:"osVersion"`
	OSProcessor           string    `json:"osProcessor"`
	OSBuild               int64     `json:"osBuild"`
	Version               string    `json:"version"`
	LastIPAddress         string    `json:"lastIpAddress"`
	LastExternalIPAddress string    `json:"lastExternalIpAddress"`
	AgentVersion          string    `json:"agentVersion"`
	HealthStatus          string    `json:"healthStatus"`
	OnboardingStatus      string    `json:"onboardingStatus"`
	RiskScore             string    `json:"riskScore"`
	ExposureLevel         string    `json:"exposureLevel"`
	IsAADJoined           bool      `json:"isAadJoined"`
	AADDeviceID           string    `json:"aadDeviceId"`
	RBACGroupID           int       `json:"rbacGroupId"`
	RBACGroupName         string    `json:"rbacGroupName"`
	MachineTags           []string  `json:"machineTags"`
}

// Alert is an alert, in the JSON shape of the Defender for Endpoint alert
// entity (a subset of its properties).
type Alert struct {
	ID                 string     `json:"id"`
	IncidentID         int64      `json:"incidentId"`
	InvestigationID    *int64     `json:"investigationId"`
	AssignedTo         *string    `json:"assignedTo"`
	Severity           string     `json:"severity"`
	Status             string     `json:"status"`
	Classification     *string    `json:"classification"`
	Determination      *string    `json:"determination"`
	InvestigationState string     `json:"investigationState"`
	DetectionSource    string     `json:"detectionSource"`
	DetectorID         string     `json:"detectorId"`
	Category           string     `json:"category"`
	ThreatFamilyName   *string    `json:"threatFamilyName"`
	Title              string     `json:"title"`
	Description        string     `json:"description"`
	AlertCreationTime  time.Time  `json:"alertCreationTime"`
	FirstEventTime     time.Time  `json:"firstEventTime"`
	LastEventTime      time.Time  `json:"lastEventTime"`
	LastUpdateTime     time.Time  `json:"lastUpdateTime"`
	ResolvedTime       *time.Time `json:"resolvedTime"`
	MachineID          string     `json:"machineId"`
	ComputerDNSName    string     `json:"computerDnsName"`
	AADTenantID        string     `json:"aadTenantId"`
	MITRETechniques    []string   `json:"mitreTechniques"`
	Comments           []string   `json:"comments"`
}

// Fixed data, built once, because it never changes and the soak tests fetch
// it thousands of times.
var (
	fixedMachines = newMachines(5)
	fixedAlerts   = newAlerts(fixedMachines, 8)

	machineIndex = indexByID(fixedMachines, func(m *Machine) string { return m.ID })
	alertIndex   = indexByID(fixedAlerts, func(a *Alert) string { return a.ID })

	machinesList = jsonResponse(http.StatusOK, odataList{Context: odataBase + "Machines", Value: fixedMachines})
	alertsList   = jsonResponse(http.StatusOK, odataList{Context: odataBase + "Alerts", Value: fixedAlerts})
)

// odataList is an OData collection response.
type odataList struct {
	Context string `json:"@odata.context"`
	Value   any    `json:"value"`
}

// baseTime is the time around which the fake resources are dated.
var baseTime = time.Date(2024, time.March, 4, 8, 30, 0, 0, time.UTC)

// newMachines returns n machines with IDs and properties derived from their
// index, so every server and every run has the same machines.
func newMachines(n int) []Machine {
	platforms := []struct {
		platform, version string
		build             int64
	}{
		{"Windows11", "22H2", 22621},
		{"Windows10", "22H2", 19045},
		{"WindowsServer2022", "21H2", 20348},
		{"Linux", "Ubuntu 22.04", 0},
		{"macOS", "14.3", 0},
	}
	out := make([]Machine, n)
	for i := range out {
		sum := sha1.Sum(fmt.Appendf(nil, "xdrtest machine %d", i))
		p := platforms[i%len(platforms)]
		out[i] = Machine{
			ID:                    hex.EncodeToString(sum[:]),
			ComputerDNSName:       fmt.Sprintf("ws-%02d.contoso.com", i+1),
			FirstSeen:             baseTime.AddDate(0, -6, -i),
			LastSeen:              baseTime.Add(-time.Duration(i) * time.Hour),
			OSPlatform:            p.platform,
			OSVersion:             p.version,
			OSProcessor:           "x64",
			OSBuild:               p.build,
			Version:               p.version,
			LastIPAddress:         fmt.Sprintf("10.0.0.%d", 10+i),
			LastExternalIPAddress: fmt.Sprintf("203.0.113.%d", 10+i),
			AgentVersion:          "10.8760.22621.1105",
			HealthStatus:          "Active",
			OnboardingStatus:      "Onboarded",
			RiskScore:             []string{"None", "Low", "Medium", "High"}[i%4],
			ExposureLevel:         []string{"Low", "Medium", "High"}[i%3],
			IsAADJoined:           i%2 == 0,
			AADDeviceID:           uuidFromHash(sum[:]),
			RBACGroupID:           1 + i%2,
			RBACGroupName:         []string{"Workstations", "Servers"}[i%2],
			MachineTags:           []string{"xdrtest"},
		}
	}
	return out
}

// newAlerts returns n alerts spread over machines, derived from their index.
func newAlerts(machines []Machine, n int) []Alert {
	titles := []struct{ title, category, severity string }{
		{"Suspicious PowerShell command line", "Execution", "Medium"},
		{"Credential dumping activity observed", "CredentialAccess", "High"},
		{"Suspicious scheduled task", "Persistence", "Low"},
		{"Ransomware behavior detected in the file system", "Ransomware", "High"},
	}
	out := make([]Alert, n)
	for i := range out {
		sum := sha1.Sum(fmt.Appendf(nil, "xdrtest alert %d", i))
		high := binary.BigEndian.Uint64(sum[0:8])
		low := int32(binary.BigEndian.Uint32(sum[8:12]))
		t := titles[i%len(titles)]
		m := machines[i%len(machines)]
		created := baseTime.Add(-time.Duration(n-i) * 90 * time.Minute)
		out[i] = Alert{
			// The same Microsoft Learn page shows alert IDs such as
			// "da637472900382838869_1364969609".
			ID:                 fmt.Sprintf("da%018d_%d", 638000000000000000+high%1000000000000000, low),
			IncidentID:         int64(100 + i),
			Severity:           t.severity,
			Status:             "New",
			InvestigationState: "PendingApproval",
			DetectionSource:    "WindowsDefenderAtp",
			DetectorID:         uuidFromHash(sum[4:]),
			Category:           t.category,
			Title:              t.title,
			Description:        "xdrtest fixed alert: " + strings.ToLower(t.title) + ".",
			AlertCreationTime:  created,
			FirstEventTime:     created.Add(-5 * time.Minute),
			LastEventTime:      created.Add(-1 * time.Minute),
			LastUpdateTime:     created.Add(10 * time.Minute),
			MachineID:          m.ID,
			ComputerDNSName:    m.ComputerDNSName,
			AADTenantID:        TenantID,
			MITRETechniques:    []string{"T1059.001"},
			Comments:           []string{},
		}
	}
	return out
}

// uuidFromHash formats the first 16 bytes of a hash as a version 4 UUID.
func uuidFromHash(sum []byte) string {
	var b [16]byte
	copy(b[:], sum)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// indexByID maps the lower-case ID of each item to its precomputed single
// entity response.
func indexByID[T any](items []T, id func(*T) string) map[string]response {
	out := make(map[string]response, len(items))
	for i := range items {
		out[strings.ToLower(id(&items[i]))] = jsonResponse(http.StatusOK, entity(odataBase, &items[i]))
	}
	return out
}

// entity returns v with the "@odata.context" of a single entity.
func entity(base string, v any) any {
	switch v := v.(type) {
	case *Machine:
		return struct {
			Context string `json:"@odata.context"`
			*Machine
		}{base + "Machines/$entity", v}
	case *Alert:
		return struct {
			Context string `json:"@odata.context"`
			*Alert
		}{base + "Alerts/$entity", v}
	case *MachineAction:
		return struct {
			Context string `json:"@odata.context"`
			*MachineAction
		}{base + "MachineActions/$entity", v}
	}
	panic(fmt.Sprintf("xdrtest: no entity set for %T", v))
}

// Machines returns the fixed machines that the server lists, in the order
// of GET /api/machines.
func (s *Server) Machines() []Machine {
	out := make([]Machine, len(fixedMachines))
	for i, m := range fixedMachines {
		m.MachineTags = append([]string(nil), m.MachineTags...)
		out[i] = m
	}
	return out
}

// Alerts returns the fixed alerts that the server lists, in the order of
// GET /api/alerts.
func (s *Server) Alerts() []Alert {
	out := make([]Alert, len(fixedAlerts))
	for i, a := range fixedAlerts {
		a.MITRETechniques = append([]string(nil), a.MITRETechniques...)
		a.Comments = append([]string{}, a.Comments...)
		out[i] = a
	}
	return out
}

// endpoint is a resource path and the handlers of its methods.
type endpoint struct {
	route   route
	methods map[string]func(s *Server, r *http.Request, params []string) response
}

var endpoints = []endpoint{
	{mustParseRoute("/api/machines"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).listMachines,
	}},
	{mustParseRoute("/api/machines/{id}"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).getMachine,
	}},
	{mustParseRoute("/api/machines/{id}/isolate"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodPost: (*Server).isolateMachine,
	}},
	{mustParseRoute("/api/machines/{id}/offboard"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodPost: (*Server).offboardMachine,
	}},
	{mustParseRoute("/api/alerts"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).listAlerts,
	}},
	{mustParseRoute("/api/alerts/{id}"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).getAlert,
	}},
	{mustParseRoute("/api/advancedqueries/run"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodPost: (*Server).runAdvancedQuery,
	}},
	{mustParseRoute("/api/machineactions"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).listMachineActions,
	}},
	{mustParseRoute("/api/machineactions/{id}"), map[string]func(*Server, *http.Request, []string) response{
		http.MethodGet: (*Server).getMachineAction,
	}},
}

// serveResource dispatches an authenticated request to its resource. An unknown
// path gets 404 "NotFound" and a known path with another method gets 405
// "MethodNotAllowed", with the default messages of ASP.NET Web API.
func (s *Server) serveResource(r *http.Request, segments []string) response {
	for _, ep := range endpoints {
		if !ep.route.matchSegments(segments) {
			continue
		}
		if handle, ok := ep.methods[r.Method]; ok {
			return handle(s, r, ep.route.params(segments))
		}
		allowed := make([]string, 0, len(ep.methods))
		for method := range ep.methods {
			allowed = append(allowed, method)
		}
		sort.Strings(allowed)
		resp := errorResponse(http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
		resp.header.Set("Allow", strings.Join(allowed, ", "))
		return resp
	}
	return errorResponse(http.StatusNotFound, "NotFound",
		fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
}

func (s *Server) listMachines(*http.Request, []string) response { return machinesList }

func (s *Server) getMachine(_ *http.Request, params []string) response {
	if resp, ok := machineIndex[strings.ToLower(params[0])]; ok {
		return resp
	}
	return machineNotFound(params[0])
}

func machineNotFound(id string) response {
	return errorResponse(http.StatusNotFound, "NotFound", fmt.Sprintf("Machine '%s' was not found", id))
}

func (s *Server) listAlerts(*http.Request, []string) response { return alertsList }

func (s *Server) getAlert(_ *http.Request, params []string) response {
	if resp, ok := alertIndex[strings.ToLower(params[0])]; ok {
		return resp
	}
	return errorResponse(http.StatusNotFound, "NotFound", fmt.Sprintf("Alert '%s' was not found", params[0]))
}
