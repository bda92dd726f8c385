package xdrtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxRequestBody is the largest POST body that the server reads.
const maxRequestBody = 1 << 20

// Requestor is the identity that the server puts in the "requestor" field of
// the machine actions that it creates.
const Requestor = "xdrtest@contoso.com"

// Machine action statuses, as the Defender for Endpoint API spells them.
const (
	ActionPending    = "Pending"
	ActionInProgress = "InProgress"
	ActionSucceeded  = "Succeeded"
	ActionFailed     = "Failed"
	ActionTimeOut    = "TimeOut"
	ActionCancelled  = "Cancelled"
)

// MachineAction is a response action on a machine, such as an isolation, in
// the JSON shape of the Defender for Endpoint MachineAction entity (a subset
// of its properties).
type MachineAction struct {
	ID                      string     `json:"id"`
	Type                    string     `json:"type"`
	Scope                   *string    `json:"scope"`
	Requestor               string     `json:"requestor"`
	RequestorComment        string     `json:"requestorComment"`
	Status                  string     `json:"status"`
	MachineID               string     `json:"machineId"`
	ComputerDNSName         string     `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time  `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time  `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string    `json:"cancellationRequestor"`
	CancellationComment     *string    `json:"cancellationComment"`
	CancellationDateTimeUTC *time.Time `json:"cancellationDateTimeUtc"`
	ErrorHResult            int        `json:"errorHResult"`
}

// active reports whether the action still blocks a new action of its type.
func (a *MachineAction) active() bool {
	return a.Status == ActionPending || a.Status == ActionInProgress
}

// MachineActions returns a copy of the machine actions created so far, in
// creation order.
func (s *Server) MachineActions() []MachineAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MachineAction, len(s.actions))
	for i, a := range s.actions {
		out[i] = *a
	}
	return out
}

// SetActionStatus sets the status of the machine action with id, such as
// [ActionSucceeded], and reports whether the action exists. An action whose
// status is no longer Pending or InProgress lets the machine take a new
// action of the same type.
func (s *Server) SetActionStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.actions {
		if strings.EqualFold(a.ID, id) {
			a.Status = status
			a.LastUpdateDateTimeUTC = time.Now().UTC()
			return true
		}
	}
	return false
}

func (s *Server) listMachineActions(*http.Request, []string) response {
	return jsonResponse(http.StatusOK, odataList{Context: odataBase + "MachineActions", Value: s.MachineActions()})
}

func (s *Server) getMachineAction(_ *http.Request, params []string) response {
	for _, a := range s.MachineActions() {
		if strings.EqualFold(a.ID, params[0]) {
			return jsonResponse(http.StatusOK, entity(odataBase, &a))
		}
	}
	return errorResponse(http.StatusNotFound, "NotFound", fmt.Sprintf("MachineAction '%s' was not found", params[0]))
}

// isolateMachine handles POST /api/machines/{id}/isolate with the body
// {"Comment": "...", "IsolationType": "Full" | "Selective"}.
func (s *Server) isolateMachine(r *http.Request, params []string) response {
	fields, errResp, ok := decodeBody(r, "Comment", "IsolationType")
	if !ok {
		return errResp
	}
	comment, errResp, ok := requiredString(fields, "Comment")
	if !ok {
		return errResp
	}
	isolation := "Full"
	if _, present := fields["IsolationType"]; present {
		isolation, errResp, ok = requiredString(fields, "IsolationType")
		if !ok {
			return errResp
		}
		if isolation != "Full" && isolation != "Selective" {
			return errorResponse(http.StatusBadRequest, "InvalidRequestBody",
				fmt.Sprintf("IsolationType '%s' is invalid. Valid values are 'Full' and 'Selective'.", isolation))
		}
	}
	return s.createAction(params[0], "Isolate", &isolation, comment)
}

// offboardMachine handles POST /api/machines/{id}/offboard with the body
// {"Comment": "..."}.
func (s *Server) offboardMachine(r *http.Request, params []string) response {
	fields, errResp, ok := decodeBody(r, "Comment")
	if !ok {
		return errResp
	}
	comment, errResp, ok := requiredString(fields, "Comment")
	if !ok {
		return errResp
	}
	return s.createAction(params[0], "Offboard", nil, comment)
}

// createAction creates a Pending action of actionType on the machine, unless
// the machine is unknown (404 "NotFound") or already has an active action of
// that type (400 "ActiveRequestAlreadyExists").
func (s *Server) createAction(machineID, actionType string, scope *string, comment string) response {
	var machine *Machine
	for i := range fixedMachines {
		if strings.EqualFold(fixedMachines[i].ID, machineID) {
			machine = &fixedMachines[i]
		}
	}
	if machine == nil {
		return machineNotFound(machineID)
	}

	now := time.Now().UTC()
	action := &MachineAction{
		ID:                    newUUID(),
		Type:                  actionType,
		Scope:                 scope,
		Requestor:             Requestor,
		RequestorComment:      comment,
		Status:                ActionPending,
		MachineID:             machine.ID,
		ComputerDNSName:       machine.ComputerDNSName,
		CreationDateTimeUTC:   now,
		LastUpdateDateTimeUTC: now,
	}

	s.mu.Lock()
	for _, a := range s.actions {
		if a.MachineID == machine.ID && a.Type == actionType && a.active() {
			s.mu.Unlock()
			return errorResponse(http.StatusBadRequest, "ActiveRequestAlreadyExists",
				fmt.Sprintf("Action '%s' is already in progress on machine '%s' (action ID %s)", actionType, machine.ID, a.ID))
		}
	}
	s.actions = append(s.actions, action)
	created := *action
	s.mu.Unlock()

	return jsonResponse(http.StatusCreated, entity(odataBase, &created))
}

// runAdvancedQuery handles POST /api/advancedqueries/run with the body
// {"Query": "<KQL>"}. It does not parse the query: every query returns one
// row per fixed machine.
func (s *Server) runAdvancedQuery(r *http.Request, _ []string) response {
	fields, errResp, ok := decodeBody(r, "Query")
	if !ok {
		return errResp
	}
	if _, errResp, ok := requiredString(fields, "Query"); !ok {
		return errResp
	}

	return advancedQueryResult
}

// advancedQueryResult is the response of every valid advanced query.
var advancedQueryResult = newAdvancedQueryResult()

func newAdvancedQueryResult() response {
	type column struct {
		Name string `json:"Name"`
		Type string `json:"Type"`
	}
	rows := make([]map[string]any, len(fixedMachines))
	for i, m := range fixedMachines {
		rows[i] = map[string]any{
			"Timestamp":  m.LastSeen,
			"DeviceId":   m.ID,
			"DeviceName": m.ComputerDNSName,
			"OSPlatform": m.OSPlatform,
		}
	}
	return jsonResponse(http.StatusOK, struct {
		Schema  []column         `json:"Schema"`
		Results []map[string]any `json:"Results"`
	}{
		Schema: []column{
			{"Timestamp", "DateTime"},
			{"DeviceId", "String"},
			{"DeviceName", "String"},
			{"OSPlatform", "String"},
		},
		Results: rows,
	})
}

// decodeBody reads a JSON object body whose member names must be among
// allowed, compared case-sensitively as the Defender API compares them. It
// returns a 400 "InvalidRequestBody" response and false for a missing,
// oversized or malformed body, or for an unknown or wrongly cased member.
func decodeBody(r *http.Request, allowed ...string) (map[string]json.RawMessage, response, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	switch {
	case err != nil:
		return nil, invalidBody("The request body could not be read: " + err.Error()), false
	case len(data) > maxRequestBody:
		return nil, invalidBody(fmt.Sprintf("The request body is larger than %d bytes.", maxRequestBody)), false
	case len(bytes.TrimSpace(data)) == 0:
		return nil, invalidBody("The request body is missing."), false
	}

	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, invalidBody("The request body is not a valid JSON object."), false
	}
	for name := range fields {
		known := false
		for _, a := range allowed {
			if name == a {
				known = true
			}
		}
		if !known {
			return nil, invalidBody(fmt.Sprintf(
				"The request body has the unknown property '%s'. Valid properties are %s, and their names are case-sensitive.",
				name, strings.Join(allowed, ", "))), false
		}
	}
	return fields, response{}, true
}

// requiredString returns the non-empty string member name of fields. It
// returns a 400 "MissingRequiredParameter" response and false for a missing,
// null or empty member, and a 400 "InvalidRequestBody" response and false
// for a member that is not a string.
func requiredString(fields map[string]json.RawMessage, name string) (string, response, bool) {
	raw, present := fields[name]
	if !present || string(raw) == "null" {
		return "", missingParameter(name), false
	}
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", invalidBody(fmt.Sprintf("The property '%s' must be a string.", name)), false
	}
	if strings.TrimSpace(value) == "" {
		return "", missingParameter(name), false
	}
	return value, response{}, true
}

func invalidBody(message string) response {
	return errorResponse(http.StatusBadRequest, "InvalidRequestBody", message)
}

func missingParameter(name string) response {
	return errorResponse(http.StatusBadRequest, "MissingRequiredParameter",
		fmt.Sprintf("The required parameter '%s' is missing or empty.", name))
}
