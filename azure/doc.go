// Package azure connects xdrretry to Azure credentials: any
// [azcore.TokenCredential], such as the credentials of azidentity, can set
// the bearer token of each request and supply a new token after a 401.
//
// It is a module of its own, github.com/xdrretry/xdrretry/azure, so that
// programs that import only xdrretry do not download the Azure SDK.
//
// # Plain net/http
//
//	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, secret, nil)
//	...
//	client := &http.Client{Transport: azure.NewTransport(cred, nil, []string{azure.DefenderScope})}
//	resp, err := client.Get("https://api.securitycenter.microsoft.com/api/alerts")
//
// # Under an azcore pipeline
//
// An azcore pipeline retries on its own by default, and it parses error
// bodies itself. Turn its retries off, so that a failing request is not
// retried by both layers, and make xdrretry return failed responses with
// their bodies, so that [runtime.NewResponseError] can read the error code:
//
//	pl := runtime.NewPipeline("mymodule", "v1.0.0", runtime.PipelineOptions{}, &policy.ClientOptions{
//		Retry: policy.RetryOptions{MaxRetries: -1},
//		Transport: &http.Client{Transport: azure.NewTransport(cred, nil, []string{azure.GraphScope},
//			xdrretry.WithErrorResponses(true),
//		)},
//	})
//
// A client that adds azcore's BearerTokenPolicy keeps setting the
// Authorization header itself. The transport leaves such a header as it is
// and still refreshes the token on a 401, and xdrretry sends the
// replacement in place of the rejected token that the policy keeps in its
// cache.
//
// azcore's pipeline reads every error body into memory and replaces
// Response.Body, so [xdrretry.ErrorFromResponse] returns nil for a
// response that came out of a pipeline. [azcore.ResponseError] carries the
// status and the error code, and its RawResponse carries the headers,
// including Graph's request-id, and the body, including Defender's
// tracking ID in "target".
//
// # Scopes
//
// A token is valid for one API, the resource whose permissions the app
// registration has:
//   - [DefenderScope] for the Defender for Endpoint API (machines, alerts,
//     machine actions, advanced queries: the "WindowsDefenderATP"
//     permissions), as Microsoft's guide to app access for Defender for
//     Endpoint requests it for api.securitycenter.microsoft.com.
//   - [XDRScope] for the Defender XDR API (incidents and advanced hunting:
//     the "Microsoft Threat Protection" permissions), as Microsoft's guide
//     to app access for Defender XDR requests it for
//     api.security.microsoft.com.
//   - [GraphScope] for the Microsoft Graph security API.
package azure
