//! The same benchmark table served through `hickory-server`'s `Server` and a
//! `RequestHandler`, to compare its per-request cost with shoal's own UDP loop.
//!
//! ```text
//! cargo run --release -p shoal-dns --features hickory-baseline --example hickory_server -- 127.0.0.1:5302
//! ```
//! Answers A queries for the table's names; everything else gets NODATA/NXDOMAIN here
//! (no forwarding: this is a baseline for the answering path only).

#[path = "common/bench_table.rs"]
mod bench_table;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hickory_proto::op::{Header, HeaderCounts, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use shoal_dns::RecordTable;
use tokio::net::UdpSocket;

struct TableHandler {
    table: Arc<RecordTable>,
}

impl TableHandler {
    async fn handle<R: ResponseHandler>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let request_metadata =
            hickory_proto::op::Metadata::response_from_request(&request.metadata);
        let mut metadata = request_metadata;
        let failed = move || {
            let mut m = request_metadata;
            m.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata: m,
                counts: HeaderCounts::default(),
            })
        };
        let Ok(info) = request.request_info() else {
            return failed();
        };
        let name = info.query.name().to_string();
        let key = name.trim_end_matches('.');
        let found = self
            .table
            .resolve(bench_table::NETWORK, request.src().ip(), key);
        metadata.authoritative = found.is_some();
        metadata.recursion_available = true;
        metadata.message_type = MessageType::Response;
        if found.is_none() {
            metadata.response_code = ResponseCode::NXDomain;
        }
        let owner = info.query.original().name().clone();
        let records: Vec<Record> = match (found, info.query.query_type()) {
            (Some(addrs), RecordType::A) => addrs
                .into_iter()
                .map(|a| Record::from_rdata(owner.clone(), self.table.ttl(), RData::A(A(a))))
                .collect(),
            _ => Vec::new(),
        };
        let builder = MessageResponseBuilder::from_message_request(request);
        let reply = builder.build(metadata, records.iter(), [], [], []);
        match response.send_response(reply).await {
            Ok(info) => info,
            Err(_) => failed(),
        }
    }
}

impl RequestHandler for TableHandler {
    // `RequestHandler` is an `async_trait`; this is its expanded signature.
    fn handle_request<'s, 'r, 'f, R, T>(
        &'s self,
        request: &'r Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'f>>
    where
        R: ResponseHandler + 'f,
        T: Time + 'f,
        's: 'f,
        'r: 'f,
        Self: 'f,
    {
        Box::pin(self.handle(request, response_handle))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5302").parse()?;
    let services: u32 = args.next().as_deref().unwrap_or("1000").parse()?;
    let handler = TableHandler {
        table: Arc::new(bench_table::table(services)),
    };
    let mut server = Server::new(handler);
    server.register_socket(UdpSocket::bind(addr).await?);
    eprintln!("hickory-server: serving {services} services on {addr}");
    server.block_until_done().await?;
    Ok(())
}
