// One place for the Boost.Asio/Beast aliases every networking file uses.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace llmcache::http {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
template <class T = void>
using awaitable = boost::asio::awaitable<T>;
inline constexpr auto use_nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);
}  // namespace llmcache::http
